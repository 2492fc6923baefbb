"""The encoder options: x264/x265 and NVENC, and refusing NVENC where ffmpeg cannot run it."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from stereo_infer import encoding
from stereo_infer.cli import main
from stereo_infer.encoding import VideoEncoding, encoder_opens
from stereo_infer.errors import BadInputError
from stereo_infer.exitcodes import BAD_INPUT
from stereo_infer.framerate import FrameRate
from stereo_types.formats import EncoderPreset

RATE = FrameRate(num=24, den=1)


def _pairs(args: list[str]) -> dict[str, str]:
    return dict(zip(args[::2], args[1::2], strict=True))


def test_software_is_the_default_and_keeps_x264() -> None:
    args = _pairs(VideoEncoding(crf=20, preset="slow").args(RATE))
    assert args["-c:v"] == "libx264"
    assert args["-crf"] == "20"
    assert args["-preset"] == "slow"
    assert "repeat-headers=1" in args["-x264-params"]


@pytest.mark.parametrize(("codec", "name"), [("h264", "h264_nvenc"), ("hevc", "hevc_nvenc")])
def test_nvenc_args(codec: str, name: str) -> None:
    args = _pairs(VideoEncoding(codec=codec, crf=23, preset="veryslow", encoder="nvenc").args(RATE))
    assert args["-c:v"] == name
    assert args["-bf"] == "0"  # pts == dts, as the software encoders
    assert (args["-rc"], args["-cq"], args["-b:v"]) == ("vbr", "23", "0")
    assert args["-preset"] == "p7"
    # Parameter sets at every keyframe: segments join by stream copy.
    assert args["-bsf:v"] == "dump_extra=freq=keyframe"
    assert "-x264-params" not in args and "-crf" not in args


def test_nvenc_quality_zero_is_best_not_automatic() -> None:
    args = _pairs(VideoEncoding(crf=0, encoder="nvenc").args(RATE))
    assert args["-cq"] == "1"


def test_nvenc_lossless_intermediate() -> None:
    args = _pairs(VideoEncoding(encoder="nvenc").args(RATE))
    assert args["-tune"] == "lossless" and "-cq" not in args


def test_every_preset_maps_onto_nvenc() -> None:
    for preset in EncoderPreset:
        args = _pairs(VideoEncoding(crf=20, preset=preset.value, encoder="nvenc").args(RATE))
        assert args["-preset"] in {f"p{n}" for n in range(1, 8)}


def test_an_unknown_encoder_is_bad_input() -> None:
    with pytest.raises(BadInputError, match="encoder"):
        VideoEncoding(encoder="quicksync")


def test_software_needs_no_probe(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(encoding, "encoder_opens", lambda name: pytest.fail(name))
    assert VideoEncoding().available() == VideoEncoding()


@pytest.mark.skipif(encoder_opens("h264_nvenc"), reason="this machine's ffmpeg runs NVENC")
def test_nvenc_without_a_gpu_is_refused_naming_the_encoder() -> None:
    with pytest.raises(BadInputError, match="h264_nvenc"):
        VideoEncoding(crf=20, encoder="nvenc").available()


@pytest.mark.skipif(encoder_opens("h264_nvenc"), reason="this machine's ffmpeg runs NVENC")
def test_convert_refuses_nvenc_before_reading_the_source(
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ["convert", "--input", "/nonexistent/in.mp4", "--output", "/nonexistent/out.mp4"]
    argv += ["--format", "half-sbs", "--engine", "copy", "--codec", "hevc", "--encoder", "nvenc"]
    assert main(argv) == BAD_INPUT
    assert "hevc_nvenc" in capsys.readouterr().err


def test_the_probe_opens_the_encoder() -> None:
    # Not `ffmpeg -encoders`: it lists NVENC wherever ffmpeg was built with it, GPU or not.
    assert encoder_opens("libx264")
    assert not encoder_opens("no_such_encoder")


def test_nvenc_parameter_sets_reach_every_keyframe(tmp_path: Path) -> None:
    """The bitstream filter NVENC's args end with, on x264 without repeat-headers (no NVENC
    here): an mp4 then holds SPS in-band at each of its 4 keyframes, beside the global one."""
    bsf = _pairs(VideoEncoding(crf=20, encoder="nvenc").args(RATE))["-bsf:v"]
    out = tmp_path / "keyframes.mp4"
    source = ["-f", "lavfi", "-i", "testsrc2=size=128x72:rate=24", "-frames:v", "48"]
    encode = ["-c:v", "libx264", "-g", "12", "-bf", "0", "-bsf:v", bsf, str(out)]
    subprocess.run(["ffmpeg", "-v", "error", "-y", *source, *encode], check=True)
    trace = ["ffmpeg", "-v", "trace", "-i", str(out), "-c", "copy", "-bsf:v", "trace_headers"]
    log = subprocess.run([*trace, "-f", "null", "-"], capture_output=True, text=True).stderr
    assert log.count("Sequence Parameter Set") == 1 + 4
