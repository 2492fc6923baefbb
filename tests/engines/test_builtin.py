"""The builtin engine end to end on tiny videos (CPU): formats, disparity, frames, CLI."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest
import torch

from stereo_infer import exitcodes
from stereo_infer.cli import main
from stereo_infer.encoding import VideoEncoding
from stereo_infer.engines import EngineJob, EngineOptions
from stereo_infer.engines.depth import PRIOR, PriorDepth, StreamState
from stereo_infer.engines.formats import StereoFormat, output_size
from stereo_infer.probe import probe
from stereo_infer.window import SegmentInput
from tests.engines.conversions import convert_file
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

if TYPE_CHECKING:
    from stereo_infer.engines.builtin import BuiltinEngine


# The weight-free depth model: the same depth for the same frame, whatever came before.
convert = functools.partial(convert_file, depth_model=PRIOR, encoding=VideoEncoding())


@pytest.mark.parametrize("fmt", list(StereoFormat))
def test_every_format_keeps_frames_and_has_the_right_size(
    builtin_engine: BuiltinEngine, tiny_clip: Path, tmp_path: Path, fmt: StereoFormat
) -> None:
    out = convert(builtin_engine, tiny_clip, tmp_path / f"{fmt.value}.mp4", fmt, pre_roll=3)
    info = stream_info(out)
    assert (info["width"], info["height"]) == output_size(fmt, 160, 90)
    assert info["codec_name"] == "h264" and info["has_b_frames"] == 0
    assert info["r_frame_rate"] == "30/1"
    # 12 frames in, 3 of them pre-roll: 9 out, stamped 0, 1, 2 ... frame periods.
    stamps = packets(out)
    assert len(stamps) == 9
    assert all(pts == dts for pts, dts in stamps)
    step = stamps[1][0] - stamps[0][0]
    assert [pts for pts, _ in stamps] == [i * step for i in range(9)]


def test_pre_roll_frames_are_the_ones_dropped(
    builtin_engine: BuiltinEngine, tiny_clip: Path, tmp_path: Path
) -> None:
    """Divergence 0 leaves each view the source: the output's first frame is source frame 3."""
    out = convert(
        builtin_engine,
        tiny_clip,
        tmp_path / "o.mp4",
        StereoFormat.FULL_SBS,
        divergence=0.0,
        pre_roll=3,
    )
    source = read_frames(tiny_clip).astype(int)
    frames = read_frames(out).astype(int)
    assert len(frames) == 9
    for i in (0, 8):
        left, right = frames[i][:, :160], frames[i][:, 160:]
        # Lossless but 4:2:0 chroma both ways: colours within a few levels.
        assert np.abs(left - source[i + 3]).mean() < 3
        assert np.abs(right - source[i + 3]).mean() < 3
        assert np.abs(left - source[i + 2]).mean() > 3 * np.abs(left - source[i + 3]).mean()


def test_square_disparity_has_the_right_sign_and_grows_with_divergence(
    builtin_engine: BuiltinEngine, scene_clip: Path, tmp_path: Path
) -> None:
    disparities = []
    for divergence in (3.0, 6.0, 12.0):
        out = convert(
            builtin_engine,
            scene_clip,
            tmp_path / f"d{divergence}.mp4",
            StereoFormat.FULL_SBS,
            divergence=divergence,
            convergence=0.5,
        )
        frame = read_frames(out)[0]
        left, right = frame[:, :320], frame[:, 320:]
        disparities.append(square_centre(left) - square_centre(right))
    # Near (the prior sees the bright square as near): further right in the left view.
    assert all(d > 0 for d in disparities), disparities
    assert disparities[0] < disparities[1] < disparities[2], disparities
    # The square's outline has in-between depth (the estimate is smooth at the
    # working resolution), so the measured shift trails the interior's, but
    # 4x the divergence still gives several times the disparity.
    assert 2.5 < disparities[2] / disparities[0] < 5.0, disparities


def test_anaglyph_channels_come_from_the_views(
    builtin_engine: BuiltinEngine, scene_clip: Path, tmp_path: Path
) -> None:
    """Red follows the left view's square, green/blue the right view's."""
    sbs_file = convert(
        builtin_engine, scene_clip, tmp_path / "sbs.mp4", StereoFormat.FULL_SBS, divergence=8.0
    )
    ana_file = convert(
        builtin_engine, scene_clip, tmp_path / "ana.mp4", StereoFormat.ANAGLYPH, divergence=8.0
    )
    assert_anaglyph_follows_the_views(read_frames(sbs_file)[0], read_frames(ana_file)[0])


def test_encoder_settings_reach_the_output(
    builtin_engine: BuiltinEngine, tiny_clip: Path, tmp_path: Path
) -> None:
    out = convert(
        builtin_engine,
        tiny_clip,
        tmp_path / "o.mkv",
        StereoFormat.HALF_TB,
        encoding=VideoEncoding(codec="hevc", crf=30, preset="ultrafast"),
    )
    info = stream_info(out)
    assert info["codec_name"] == "hevc" and info["pix_fmt"] == "yuv420p"
    assert len(packets(out)) == 12


def test_cli_convert_with_builtin(tiny_clip: Path, tmp_path: Path) -> None:
    out = tmp_path / "out" / "seg.mp4"
    args = ["--no-progress", "convert", "--input", tiny_clip.as_uri(), "--output", out.as_uri()]
    args += ["--format", "half-sbs", "--engine", "builtin", "--depth-model", "Prior"]
    args += ["--pre-roll", "2", "--crf", "20", "--device", "cpu", "--batch-size", "4"]
    assert main(args) == exitcodes.OK
    info = stream_info(out)
    assert (info["width"], info["height"]) == (160, 90)
    assert len(packets(out)) == 10


@pytest.mark.parametrize(
    ("extra", "code", "message"),
    [
        (["--depth-model", "Any_V2_S"], exitcodes.MODEL_UNAVAILABLE, "weights"),
        (["--depth-model", "ZoeD_N"], exitcodes.MODEL_UNAVAILABLE, "no depth model 'ZoeD_N'"),
        (["--device", "tpu"], exitcodes.BAD_INPUT, "device must be"),
        (["--batch-size", "0"], exitcodes.BAD_INPUT, "--batch-size: must be an integer >= 1"),
    ],
)
def test_cli_refuses_what_builtin_cannot_make_before_any_work(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    extra: list[str],
    code: int,
    message: str,
) -> None:
    monkeypatch.setenv("STEREO_DEPTH_WEIGHTS", str(tmp_path / "no-weights"))
    # The input does not exist: a refusal that names the engine, not the input,
    # shows the check ran before any fetch.
    args = ["convert", "--input", str(tmp_path / "missing.mp4")]
    args += ["--output", str(tmp_path / "o.mp4"), "--format", "half-sbs", "--engine", "builtin"]
    assert main([*args, *extra]) == code
    err = capsys.readouterr().err
    assert message in err and "input not found" not in err
    assert not (tmp_path / "o.mp4").exists()


def test_missing_weights_error_names_the_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    weights = tmp_path / "weights"
    monkeypatch.setenv("STEREO_DEPTH_WEIGHTS", str(weights))
    args = ["convert", "--input", "x.mp4", "--output", str(tmp_path / "o.mp4")]
    args += ["--format", "vr180", "--engine", "builtin", "--depth-model", "Any_V2_S"]
    assert main(args) == exitcodes.MODEL_UNAVAILABLE
    assert str(weights / "Any_V2_S") in capsys.readouterr().err


def test_cuda_requested_without_cuda_is_transient(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    args = ["convert", "--input", "x.mp4", "--output", str(tmp_path / "o.mp4")]
    args += ["--format", "half-sbs", "--engine", "builtin", "--device", "cuda"]
    assert main(args) == exitcodes.TEMPFAIL
    assert "no CUDA device" in capsys.readouterr().err


def test_a_broken_input_is_bad_input(builtin_engine: BuiltinEngine, tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(bytes(range(256)) * 64)
    args = ["convert", "--input", str(garbage), "--output", str(tmp_path / "o.mp4")]
    args += ["--format", "full-sbs", "--engine", "builtin", "--depth-model", "Prior"]
    assert main(args) == exitcodes.BAD_INPUT


def test_a_854_wide_half_sbs_keeps_its_size_in_420(
    builtin_engine: BuiltinEngine, engine_media: Path, tmp_path: Path
) -> None:
    # 427 columns per eye.
    source = make_testsrc(engine_media / "fwvga.mp4", size="854x480", frames=3)
    out = convert(builtin_engine, source, tmp_path / "half.mp4", StereoFormat.HALF_SBS)
    info = stream_info(out)
    assert (info["width"], info["height"], info["pix_fmt"]) == (854, 480, "yuv420p")
    assert len(packets(out)) == 3


def test_an_odd_444_source_comes_out_420_padded_to_even(
    builtin_engine: BuiltinEngine, engine_media: Path, tmp_path: Path
) -> None:
    frames = [scene_frame(161, 91, 30, seed=i) for i in range(2)]
    source = write_frames(engine_media / "odd-444.mp4", frames)
    assert stream_info(source)["pix_fmt"] == "yuv444p"
    out = convert(builtin_engine, source, tmp_path / "sbs.mp4", StereoFormat.FULL_SBS)
    info = stream_info(out)
    # 322 x 91 packed, one black row added for 4:2:0.
    assert (info["width"], info["height"], info["pix_fmt"]) == (322, 92, "yuv420p")
    frame = read_frames(out)[0]
    assert frame[-1].max() <= 20 and frame[:-1].mean() > 20


class MemoryBoundPrior(PriorDepth):
    """The prior on a device that holds two frames at a time; its state counts the frames."""

    temporal = True

    def estimate(self, frames: torch.Tensor, state: StreamState | None = None) -> torch.Tensor:
        assert state is not None
        if len(frames) > 2:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        result = super().estimate(frames, state)
        state.range = torch.tensor(len(frames)) + (0 if state.range is None else state.range)
        # Out of memory after the state moved on: the retry must not count these again.
        if len(frames) == 2 and int(state.range) == 2:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 1.00 GiB")
        return result


def test_out_of_memory_halves_the_batch_and_goes_on(tiny_clip: Path) -> None:
    from stereo_infer.engines.builtin import BuiltinEngine

    engine = BuiltinEngine(EngineOptions(device="cpu", batch_size=8))
    job = EngineJob(
        input=SegmentInput(str(tiny_clip), probe(tiny_clip).video),
        output_path=Path("unused.mp4"),
        stereo_format=StereoFormat.HALF_SBS,
        divergence=4.0,
        convergence=0.5,
        encoding=VideoEncoding(),
        depth_model="Prior",
    )
    frames = read_frames(tiny_clip)[:5].copy()
    state = StreamState()
    out, means = engine.render_fitting(frames, MemoryBoundPrior(), state, job)
    # 5 frames fail, then 2 (after moving the state), then one at a time: each counted once.
    assert engine.fit == 1
    assert state.range is not None and int(state.range) == 5
    expected, expected_means = engine.render(frames, PriorDepth(), StreamState(), job)
    assert np.array_equal(out, expected) and np.array_equal(means, expected_means)
