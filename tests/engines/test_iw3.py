"""The iw3 engine: the pure argument translation, and real runs of iw3's own code.

iw3 runs in-process from the pinned nunif snapshot that scripts/setup unpacks outside the
repository (tests/nunif.py), with its weight-free settings: depth model ``NULL`` (resize and
grey mean: bright is near) and stereo method ``forward_fill``.
"""

from __future__ import annotations

import functools
import importlib
import re
import sys
from collections.abc import Callable, Iterator
from fractions import Fraction
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

from stereo_infer import exitcodes
from stereo_infer.cli import main
from stereo_infer.encoding import VideoEncoding
from stereo_infer.engines import EngineOptions, get_engine
from stereo_infer.engines.formats import FrameSize, StereoFormat, output_size
from stereo_infer.engines.iw3 import (
    FORMAT_FLAGS,
    METHOD_ENV,
    Iw3Call,
    Iw3Engine,
    gpu_index,
    iw3_arguments,
)
from stereo_infer.errors import BadInputError, UnknownEngineError
from stereo_infer.probe import probe
from tests.engines.conversions import convert_file
from tests.engines.test_hdr import PQ, luma_levels, make_ramp
from tests.engines.videos import (
    assert_anaglyph_follows_the_views,
    make_testsrc,
    packets,
    read_frames,
    scene_frame,
    square_centre,
    stream_info,
    write_frames,
)
from tests.nunif import NUNIF_COMMIT, ROOT, nunif_dir, require_nunif

DEPTH_MODEL = "NULL"
METHOD = "forward_fill"
# The clip most tests convert: iw3's NULL model works at 392x392 whatever the input, so
# frames, not pixels, set the time.
CLIP_SIZE, CLIP_FRAMES = (64, 48), 6

# -- The argument translation (pure) ----------------------------------------------------------


def call(**changes: object) -> Iw3Call:
    values: dict[str, object] = {
        "input_path": "/work/in.mp4",
        "output_path": "/work/out.mp4",
        "stereo_format": StereoFormat.FULL_SBS,
        "divergence": 2.5,
        "convergence": 0.3,
        "depth_model": "Any_V2_S",
        "source_fps": Fraction(30000, 1001),
    }
    values.update(changes)
    return Iw3Call(**values)  # type: ignore[arg-type]


def option(args: list[str], name: str) -> str:
    return args[args.index(name) + 1]


def test_settings_translate_to_iw3_options() -> None:
    args = iw3_arguments(call())
    assert option(args, "--input") == "/work/in.mp4"
    assert option(args, "--output") == "/work/out.mp4"
    assert option(args, "--depth-model") == "Any_V2_S"
    assert option(args, "--method") == "row_flow_v3"
    assert option(args, "--divergence") == "2.5"
    assert option(args, "--convergence") == "0.3"
    assert option(args, "--gpu") == "0"
    assert "--yes" in args  # never the interactive overwrite prompt
    assert "--batch-size" not in args  # iw3's own default
    for absent in ("--start-time", "--end-time", "--half-sbs", "--tb", "--vr180", "--anaglyph"):
        assert absent not in args


@pytest.mark.parametrize(
    ("fmt", "flags"),
    [
        (StereoFormat.FULL_SBS, []),
        (StereoFormat.HALF_SBS, ["--half-sbs"]),
        (StereoFormat.FULL_TB, ["--tb"]),
        (StereoFormat.HALF_TB, ["--half-tb"]),
        (StereoFormat.ANAGLYPH, ["--anaglyph", "dubois"]),
        (StereoFormat.CROSS_EYED, ["--cross-eyed"]),
        (StereoFormat.VR180, ["--vr180"]),
    ],
)
def test_every_format_maps_to_its_flag(fmt: StereoFormat, flags: list[str]) -> None:
    args = iw3_arguments(call(stereo_format=fmt))
    layout = {"--half-sbs", "--tb", "--half-tb", "--anaglyph", "--cross-eyed", "--vr180"}
    assert [a for a in args if a in layout or a == "dubois"] == flags


def test_every_format_has_a_mapping() -> None:
    assert set(FORMAT_FLAGS) == set(StereoFormat)


@pytest.mark.parametrize("fps", [Fraction(24000, 1001), Fraction(60), Fraction(240)])
def test_frame_rate_is_never_capped(fps: Fraction) -> None:
    max_fps = float(option(iw3_arguments(call(source_fps=fps)), "--max-fps"))
    assert max_fps > fps and max_fps >= 1000


def test_device_method_and_batch_options() -> None:
    args = iw3_arguments(call(gpu=-1, batch_size=4, method="forward_fill"))
    assert option(args, "--gpu") == "-1" and option(args, "--batch-size") == "4"
    assert option(args, "--method") == "forward_fill"
    assert gpu_index("cpu", True) == -1
    assert gpu_index("cuda:2", False) == 2
    assert gpu_index("cuda", False) == 0
    assert gpu_index("auto", True) == 0 and gpu_index("auto", False) == -1


def test_translation_is_pure() -> None:
    assert iw3_arguments(call()) == iw3_arguments(call())


def test_the_image_and_the_tests_pin_one_nunif_commit() -> None:
    dockerfile = (ROOT / "inference-image" / "Dockerfile").read_text()
    setup = (ROOT / "scripts" / "setup").read_text()
    assert re.findall(r"^ARG NUNIF_COMMIT=(\w+)$", dockerfile, re.M) == [NUNIF_COMMIT]
    assert re.findall(r"^nunif_commit=(\w+)$", setup, re.M) == [NUNIF_COMMIT]


def test_missing_iw3_is_a_clear_refusal(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Whatever ran before: no nunif on the path, no iw3 imported.
    monkeypatch.setattr(sys, "path", [p for p in sys.path if Path(p) != nunif_dir()])
    for name in [m for m in sys.modules if m == "iw3" or m.startswith("iw3.")]:
        monkeypatch.delitem(sys.modules, name)
    with pytest.raises(UnknownEngineError, match="iw3 is not installed in this image") as info:
        get_engine("iw3")
    # The image lacks it: never retried, and told apart from bad input.
    assert info.value.exit_code == exitcodes.MODEL_UNAVAILABLE
    args = ["convert", "--input", "x.mp4", "--output", "y.mp4", "--format", "half-sbs"]
    assert main([*args, "--engine", "iw3"]) == exitcodes.MODEL_UNAVAILABLE
    assert "error [ModelUnavailable]: engine 'iw3'" in capsys.readouterr().err


# -- iw3's real code ---------------------------------------------------------------------------


def _forget_iw3_modules() -> None:
    """Drop iw3 and nunif from sys.modules, so later test modules see an image without iw3."""
    for name in list(sys.modules):
        if name.split(".")[0] in ("iw3", "nunif"):
            del sys.modules[name]


@pytest.fixture(scope="module")
def iw3_utils(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModuleType]:
    """iw3.utils from the snapshot, importable for this module's tests only."""
    root = require_nunif()
    with pytest.MonkeyPatch.context() as mp:
        # Set before the import: iw3 fixes its model directory when imported.
        mp.setenv("NUNIF_HOME", str(tmp_path_factory.mktemp("nunif-home")))
        mp.setenv("HF_HUB_OFFLINE", "1")  # the engine sets it; this restores it afterwards
        mp.syspath_prepend(str(root))
        yield importlib.import_module("iw3.utils")
        _forget_iw3_modules()


@pytest.fixture(scope="module")
def clip(engine_media: Path) -> Path:
    width, height = CLIP_SIZE
    path = engine_media / "iw3-clip.mp4"
    return make_testsrc(path, size=f"{width}x{height}", frames=CLIP_FRAMES)


@pytest.fixture(scope="module")
def distinct_clip(engine_media: Path) -> Path:
    """Like ``clip``, but every frame's textured background is a different one."""
    width, height = CLIP_SIZE
    frames = [scene_frame(width, height, 16, seed=i) for i in range(CLIP_FRAMES)]
    return write_frames(engine_media / "iw3-distinct.mp4", frames)


@pytest.fixture(scope="module")
def engine(iw3_utils: ModuleType) -> Iw3Engine:
    engine = Iw3Engine(EngineOptions(device="cpu"), method=METHOD)
    engine.prepare(StereoFormat.FULL_SBS, DEPTH_MODEL)
    return engine


convert = functools.partial(
    convert_file, depth_model=DEPTH_MODEL, encoding=VideoEncoding(preset="ultrafast")
)


def iw3_frame_size(fmt: StereoFormat, width: int, height: int) -> FrameSize:
    """iw3's VR180 views are squares 1.5 times the longer side; the rest as formats says."""
    if fmt is StereoFormat.VR180:
        side = max(width, height) + max(width, height) // 2
        return FrameSize(2 * side, side)
    return output_size(fmt, width, height)


def disparity(frame: np.ndarray) -> float:
    """How far right the bright square sits in the left half compared with the right half."""
    half = frame.shape[1] // 2
    return square_centre(frame[:, :half]) - square_centre(frame[:, half:])


@pytest.mark.parametrize("fmt", list(StereoFormat))
def test_every_format_keeps_frames_and_has_the_right_size(
    engine: Iw3Engine, clip: Path, tmp_path: Path, fmt: StereoFormat
) -> None:
    out = convert(engine, clip, tmp_path / f"{fmt.value}.mp4", fmt, pre_roll=2)
    info = stream_info(out)
    assert (info["width"], info["height"]) == iw3_frame_size(fmt, *CLIP_SIZE)
    assert info["codec_name"] == "h264" and info["has_b_frames"] == 0
    assert info["r_frame_rate"] == "30/1"
    # 6 frames in, 2 of them pre-roll: 4 out, stamped 0, 1, 2 ... frame periods.
    stamps = packets(out)
    assert len(stamps) == 4
    assert all(pts == dts for pts, dts in stamps)
    step = stamps[1][0] - stamps[0][0]
    assert [pts for pts, _ in stamps] == [i * step for i in range(4)]
    assert sorted(p.name for p in tmp_path.iterdir()) == [out.name]  # no iw3 leftovers


def test_pre_roll_frames_are_the_ones_dropped(
    engine: Iw3Engine, distinct_clip: Path, tmp_path: Path
) -> None:
    """Divergence 0 leaves each view the source: output frame i is source frame i + 2."""
    out = convert(
        engine, distinct_clip, tmp_path / "o.mp4", StereoFormat.FULL_SBS, divergence=0.0, pre_roll=2
    )
    source = read_frames(distinct_clip).astype(int)
    frames = read_frames(out).astype(int)
    assert len(frames) == 4
    width = CLIP_SIZE[0]
    for i in (0, 3):
        for view in (frames[i][:, :width], frames[i][:, width:]):
            errors = np.abs(source - view).mean(axis=(1, 2, 3))
            # Two lossy generations (iw3's file, then ours): close, and closest to i + 2.
            assert errors[i + 2] < 4 and int(errors.argmin()) == i + 2, errors


def test_square_disparity_has_the_right_sign_and_grows_with_divergence(
    engine: Iw3Engine, scene_clip: Path, tmp_path: Path
) -> None:
    found = []
    for divergence in (3.0, 6.0, 12.0):
        out = convert(
            engine,
            scene_clip,
            tmp_path / f"d{divergence}.mp4",
            StereoFormat.FULL_SBS,
            divergence=divergence,
        )
        found.append(disparity(read_frames(out)[0]))
    # Near (NULL sees the bright square as near): further right in the left view.
    assert all(d > 0 for d in found), found
    assert found[0] < found[1] < found[2], found
    assert 2.5 < found[2] / found[0] < 6.0, found


def test_convergence_moves_the_screen_plane_towards_the_viewer(
    engine: Iw3Engine, scene_clip: Path, tmp_path: Path
) -> None:
    """0 puts everything in front of the screen, 1 behind: the near square's disparity falls."""
    found = []
    for convergence in (0.0, 0.5, 1.0):
        out = convert(
            engine,
            scene_clip,
            tmp_path / f"c{convergence}.mp4",
            StereoFormat.FULL_SBS,
            divergence=6.0,
            convergence=convergence,
        )
        found.append(disparity(read_frames(out)[0]))
    assert found[0] > found[1] > found[2], found
    assert found[0] > 4 and abs(found[2]) < 3, found


def test_cross_eyed_puts_the_right_view_first(
    engine: Iw3Engine, scene_clip: Path, tmp_path: Path
) -> None:
    sbs = read_frames(convert(engine, scene_clip, tmp_path / "s.mp4", StereoFormat.FULL_SBS))[0]
    cross = read_frames(convert(engine, scene_clip, tmp_path / "x.mp4", StereoFormat.CROSS_EYED))[0]
    assert disparity(sbs) > 3
    assert disparity(cross) == pytest.approx(-disparity(sbs), abs=1)


def test_anaglyph_channels_come_from_the_views(
    engine: Iw3Engine, scene_clip: Path, tmp_path: Path
) -> None:
    """Red follows the left view's square, green/blue the right view's."""
    sbs_file = convert(
        engine, scene_clip, tmp_path / "sbs.mp4", StereoFormat.FULL_SBS, divergence=8.0
    )
    ana_file = convert(
        engine, scene_clip, tmp_path / "ana.mp4", StereoFormat.ANAGLYPH, divergence=8.0
    )
    assert_anaglyph_follows_the_views(read_frames(sbs_file)[0], read_frames(ana_file)[0])


def test_encoder_settings_reach_the_output(engine: Iw3Engine, clip: Path, tmp_path: Path) -> None:
    encoding = VideoEncoding(codec="hevc", crf=30, preset="ultrafast")
    out = convert(engine, clip, tmp_path / "o.mkv", StereoFormat.HALF_TB, encoding=encoding)
    info = stream_info(out)
    assert info["codec_name"] == "hevc" and info["pix_fmt"] == "yuv420p"
    assert len(packets(out)) == CLIP_FRAMES


def counting(fn: Callable[..., Any], calls: list[Any]) -> Callable[..., Any]:
    """``fn``, unchanged, recording the arguments of every call."""

    @functools.wraps(fn)
    def counted(*args: Any, **kwargs: Any) -> Any:
        calls.append((args, kwargs))
        return fn(*args, **kwargs)

    return counted


def test_depth_and_stereo_models_are_built_once_for_every_segment(
    iw3_utils: ModuleType, clip: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    null_model = importlib.import_module("iw3.null_depth_model").NullDepthModel
    created: list[Any] = []
    loaded: list[Any] = []
    stereo: list[Any] = []
    runs: list[Any] = []
    monkeypatch.setattr(
        iw3_utils, "create_depth_model", counting(iw3_utils.create_depth_model, created)
    )
    monkeypatch.setattr(null_model, "load_model", counting(null_model.load_model, loaded))
    build_stereo = counting(iw3_utils.create_stereo_model, stereo)
    monkeypatch.setattr(iw3_utils, "create_stereo_model", build_stereo)
    monkeypatch.setattr(iw3_utils, "iw3_main", counting(iw3_utils.iw3_main, runs))

    engine = Iw3Engine(EngineOptions(device="cpu", batch_size=3), method=METHOD)
    engine.prepare(StereoFormat.HALF_SBS, DEPTH_MODEL)  # a server's start
    for i, pre_roll in enumerate((0, 3, 1)):
        out = convert(
            engine,
            clip,
            tmp_path / f"seg{i}.mp4",
            StereoFormat.HALF_SBS,
            divergence=3.0,
            convergence=0.25,
            pre_roll=pre_roll,
        )
        assert len(packets(out)) == CLIP_FRAMES - pre_roll

    assert len(created) == 1 and len(loaded) == 1
    assert len(stereo) == 1 and stereo[0][0] == (METHOD,)
    assert len(runs) == 3
    states = [args[0].state for args, _ in runs]
    assert len({id(s["depth_model"]) for s in states}) == 1
    # What iw3 was asked for, as its own parser read it.
    argv = vars(runs[0][0][0])
    assert argv["depth_model"] == DEPTH_MODEL and argv["method"] == METHOD
    assert argv["half_sbs"] and argv["yes"] and argv["gpu"] == [-1] and argv["batch_size"] == 3
    assert argv["divergence"] == 3.0 and argv["convergence"] == 0.25
    assert argv["max_fps"] >= 1000
    # The engine's hook into iw3_main lasts one call: iw3's own function is back.
    assert iw3_utils.create_stereo_model is build_stereo


def test_cli_convert_with_iw3(
    iw3_utils: ModuleType, clip: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(METHOD_ENV, METHOD)
    out = tmp_path / "out" / "seg.mp4"
    args = ["--no-progress", "convert", "--input", clip.as_uri(), "--output", out.as_uri()]
    args += ["--format", "half-sbs", "--engine", "iw3", "--depth-model", DEPTH_MODEL]
    args += ["--pre-roll", "2", "--crf", "20", "--device", "cpu", "--batch-size", "4"]
    assert main(args) == exitcodes.OK
    info = stream_info(out)
    assert (info["width"], info["height"]) == CLIP_SIZE
    assert len(packets(out)) == CLIP_FRAMES - 2


def test_iw3_refuses_a_depth_model_it_does_not_know(engine: Iw3Engine) -> None:
    with pytest.raises(BadInputError, match="iw3 has no depth model 'Prior'"):
        engine.prepare(StereoFormat.FULL_SBS, "Prior")


def test_iw3_refuses_a_stereo_method_it_does_not_know(
    iw3_utils: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(METHOD_ENV, "magic")
    with pytest.raises(BadInputError, match="iw3 has no stereo method 'magic'"):
        get_engine("iw3")


def test_iw3_needs_nunif_home(iw3_utils: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NUNIF_HOME")
    with pytest.raises(UnknownEngineError, match="NUNIF_HOME"):
        get_engine("iw3")


def test_a_ten_bit_hdr10_source_stays_ten_bit(
    engine: Iw3Engine, engine_media: Path, tmp_path: Path
) -> None:
    source = make_ramp(engine_media / "iw3-ramp-pq.mp4", PQ, hdr10=True)
    encoding = VideoEncoding(codec="hevc", crf=20, preset="ultrafast")
    out = convert(engine, source, tmp_path / "hdr.mp4", StereoFormat.FULL_SBS, encoding=encoding)
    video, original = probe(out).video, probe(source).video
    assert (video.pix_fmt, video.color_transfer, video.color_primaries) == (
        "yuv420p10le",
        "smpte2084",
        "bt2020",
    )
    assert video.hdr_metadata == original.hdr_metadata is not None
    # The ramp spans 200 ten-bit codes, which 8 bits hold in at most 51 (iw3 keeps 200 here).
    levels = luma_levels(out)
    assert levels > 60, levels
