"""`stereo-infer preview`: one frame's views and depth map in a PNG, from real ffmpeg media."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from stereo_infer import exitcodes
from stereo_infer.cli import main
from stereo_infer.engines import EngineJob, EngineOptions
from stereo_infer.engines.builtin import BuiltinEngine
from stereo_infer.engines.depth import PriorDepth, StreamState
from stereo_infer.engines.formats import StereoFormat
from stereo_infer.engines.rawvideo import FrameDecoder
from stereo_infer.preview import TEXT, decode_frame, encode_png, frame_index
from stereo_infer.probe import probe
from stereo_infer.window import SegmentInput
from tests.engines.videos import scene_frame, write_frames
from tests.servers import MotoServer

WIDTH, HEIGHT, FRAMES, RATE = 320, 180, 30, 30
SQUARE = 60
# The layout for a 320x180 frame: captions 1 font pixel per pixel, 11-pixel bands, 4-pixel gap.
BAND, GAP = 11, 4
PREVIEW_SIZE = (2 * WIDTH + GAP, 2 * (BAND + HEIGHT))
LEFT_AT = (0, BAND)
RIGHT_AT = (WIDTH + GAP, BAND)
DEPTH_AT = ((PREVIEW_SIZE[0] - WIDTH) // 2, 2 * BAND + HEIGHT)


@pytest.fixture(scope="module")
def scene(media_dir: Path) -> Path:
    """1 s at 30 fps: a bright square (near) over a dark striped background, noise per frame."""
    frames = [scene_frame(WIDTH, HEIGHT, SQUARE, seed=i) for i in range(FRAMES)]
    return write_frames(media_dir / "preview-scene.mp4", frames, rate=RATE)


@pytest.fixture(scope="module")
def scene_frames(scene: Path) -> list[np.ndarray]:
    """Every frame of the scene as the engine's own decoder delivers it."""
    decoder = FrameDecoder(SegmentInput(str(scene), probe(scene).video))
    frames = []
    while True:
        frame = np.empty((HEIGHT, WIDTH, 3), dtype=np.uint8)
        if not decoder.read_into(memoryview(frame.data).cast("B")):
            break
        frames.append(frame)
    decoder.finish()
    return frames


def png_info(path: Path) -> dict[str, object]:
    entries = "stream=codec_name,width,height,pix_fmt"
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", entries, "-of", "json", str(path)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    info: dict[str, object] = json.loads(out)["streams"][0]
    return info


def read_png(path: Path, width: int, height: int) -> np.ndarray:
    args = ["-nostdin", "-loglevel", "error", "-i", str(path), "-f", "rawvideo"]
    raw = subprocess.run(
        ["ffmpeg", *args, "-pix_fmt", "rgb24", "-"],
        check=True,
        capture_output=True,
    ).stdout
    return np.frombuffer(raw, dtype=np.uint8).reshape(height, width, 3)


def panel(picture: np.ndarray, at: tuple[int, int]) -> np.ndarray:
    x, y = at
    return picture[y : y + HEIGHT, x : x + WIDTH]


def luma(rgb: np.ndarray) -> np.ndarray:
    weights = np.array([0.2126, 0.7152, 0.0722])
    result: np.ndarray = rgb.astype(np.float64) @ weights
    return result


def engine_views(source: Path, frame: np.ndarray, divergence: float) -> tuple[np.ndarray, ...]:
    """What `convert --engine builtin --format full-sbs` makes of one frame: (left, right)."""
    engine = BuiltinEngine(EngineOptions(device="cpu"))
    job = EngineJob(
        input=SegmentInput(str(source), probe(source).video),
        output_path=source.with_name("unused.mp4"),
        stereo_format=StereoFormat.FULL_SBS,
        divergence=divergence,
        convergence=0.5,
    )
    packed = engine.render(frame[None], PriorDepth(), StreamState(), job)[0][0]
    return packed[:, :WIDTH], packed[:, WIDTH:]


def test_preview_png_shows_the_engines_views_and_depth(
    scene: Path, scene_frames: list[np.ndarray], tmp_path: Path
) -> None:
    out = tmp_path / "nested" / "preview.png"
    args = ["preview", scene.as_uri(), "--at", "0.5", "--out", out.as_uri()]
    args += ["--depth-model", "Prior", "--divergence", "4", "--device", "cpu"]
    assert main(args) == exitcodes.OK

    info = png_info(out)
    assert info["codec_name"] == "png"
    assert (info["width"], info["height"]) == PREVIEW_SIZE
    assert info["pix_fmt"] == "rgb24"
    picture = read_png(out, *PREVIEW_SIZE)
    left, right, depth = (panel(picture, at) for at in (LEFT_AT, RIGHT_AT, DEPTH_AT))

    # Frame 15 (0.5 s at 30 fps), exactly as the builtin engine renders it in a conversion.
    want_left, want_right = engine_views(scene, scene_frames[15], divergence=4)
    np.testing.assert_array_equal(left, want_left)
    np.testing.assert_array_equal(right, want_right)
    assert not np.array_equal(left, engine_views(scene, scene_frames[14], divergence=4)[0])

    # The square is nearer than the background, so the views differ around it...
    top = (HEIGHT - SQUARE) // 2
    rows = slice(top, top + SQUARE)
    differs = np.any(left[rows] != right[rows], axis=-1)
    assert differs.sum() >= 2 * SQUARE, "the near square must shift between the views"
    # ...and the depth panel shows it brighter (nearer) than the background.
    assert luma(depth).std() > 10, "the depth panel must not be flat"
    square = luma(depth[rows, (WIDTH - SQUARE) // 2 : (WIDTH + SQUARE) // 2])
    assert square.mean() > luma(depth[:top]).mean() + 40

    # Captions in the bands above the rows; nothing else there but the background.
    for x, y in (LEFT_AT, RIGHT_AT, DEPTH_AT):
        band = picture[y - BAND : y, x : x + WIDTH]
        assert np.all(band == TEXT, axis=-1).sum() > 20


@pytest.mark.parametrize(("at", "index"), [(0.0, 0), (0.5, 15), (0.52, 15), (0.99, 29)])
def test_the_frame_on_screen_at_a_time_is_decoded(
    scene: Path, scene_frames: list[np.ndarray], tmp_path: Path, at: float, index: int
) -> None:
    video = probe(scene).video
    assert frame_index(video, at, "scene") == index
    frame = decode_frame(scene, video, index, tmp_path / "frame.rgb")
    np.testing.assert_array_equal(frame, scene_frames[index])


def test_png_encoder_round_trips_an_odd_size(tmp_path: Path) -> None:
    pixels = np.random.default_rng(7).integers(0, 256, size=(5, 7, 3), dtype=np.uint8)
    path = tmp_path / "odd.png"
    path.write_bytes(encode_png(pixels))
    np.testing.assert_array_equal(read_png(path, 7, 5), pixels)


@pytest.mark.parametrize(
    ("source", "extra", "message"),
    [
        ("audio_only", [], "no video stream"),
        ("src_mp4", ["--at", "2"], "--at 2 s is past the end of"),
        ("src_mp4", ["--at", "-1"], "--at must be a time >= 0"),
        ("src_mp4", ["--convergence", "2"], "--convergence: must be a number >= 0 and <= 1"),
        ("src_mp4", ["--device", "tpu"], "device must be auto, cpu, cuda or cuda:N"),
    ],
)
def test_bad_input_is_refused_with_a_clear_error(
    source: str,
    extra: list[str],
    message: str,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path: Path = request.getfixturevalue(source)
    out = tmp_path / "preview.png"
    args = ["preview", str(path), "--out", str(out), "--depth-model", "Prior", "--at", "0.5"]
    assert main([*args, *extra]) == exitcodes.BAD_INPUT
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_a_model_the_image_lacks_is_refused(
    src_mp4: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "preview.png"
    args = ["preview", str(src_mp4), "--out", str(out), "--depth-model", "Nope", "--at", "0.5"]
    assert main(args) == exitcodes.MODEL_UNAVAILABLE
    assert "has no depth model 'Nope'" in capsys.readouterr().err
    assert not out.exists()


def test_a_missing_source_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "missing.mp4"
    args = ["preview", str(missing), "--at", "0", "--out", str(tmp_path / "p.png")]
    assert main([*args, "--depth-model", "Prior"]) == exitcodes.BAD_INPUT
    assert f"input not found: {missing}" in capsys.readouterr().err


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoServer]:
    with MotoServer() as server:
        yield server


def test_preview_reads_and_writes_object_storage(
    scene: Path, moto: MotoServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name, value in moto.env.items():
        monkeypatch.setenv(name, value)
    s3 = moto.client("s3")
    s3.create_bucket(Bucket="media")
    s3.upload_file(str(scene), "media", "in/scene.mp4")
    args = ["preview", "s3://media/in/scene.mp4", "--at", "0.2", "--out", "s3://media/p/a.png"]
    assert main([*args, "--depth-model", "Prior", "--device", "cpu"]) == exitcodes.OK
    local = tmp_path / "a.png"
    s3.download_file("media", "p/a.png", str(local))
    info = png_info(local)
    assert (info["codec_name"], info["width"], info["height"]) == ("png", *PREVIEW_SIZE)
