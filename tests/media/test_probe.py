import subprocess
from fractions import Fraction
from pathlib import Path

import pytest

from stereo_infer.errors import BadInputError, ProbeError
from stereo_infer.framerate import FrameRate
from stereo_infer.probe import probe
from tests.media.pipeline import MakeVideo


def test_probe_mp4(src_mp4: Path) -> None:
    info = probe(src_mp4)
    video = info.video
    assert (video.width, video.height) == (160, 90)
    assert video.frame_rate == FrameRate(num=30, den=1)
    assert video.avg_frame_rate == video.r_frame_rate == video.frame_rate
    assert not video.variable_frame_rate
    assert video.frame_count == 60
    assert video.frame_count_method == "container"
    assert video.duration_seconds == pytest.approx(2.0)
    assert video.time_base == Fraction(1, 15360)
    assert video.start_time == info.start_time == 0.0
    assert video.rotation == 0
    assert not video.hdr
    assert info.audio is not None
    assert info.audio.codec == "aac"
    assert info.audio.duration_seconds == pytest.approx(2.0, abs=0.05)
    assert [s.type for s in info.streams] == ["video", "audio"]


def test_probe_counts_packets_when_container_has_no_frame_count(src_mkv: Path) -> None:
    video = probe(src_mkv).video
    assert video.frame_count == 60
    assert video.frame_count_method == "packets"
    assert video.duration_seconds == pytest.approx(2.0, abs=0.01)


def test_header_only_probe_counts_nothing(src_mp4: Path, src_mkv: Path) -> None:
    # mp4 stores its frame count; Matroska does not, and only a packet scan would tell.
    assert probe(src_mp4, count=False).video.frame_count == 60
    video = probe(src_mkv, count=False).video
    assert (video.frame_count, video.frame_count_method) == (0, "unknown")
    assert video.time_base == Fraction(1, 1000)
    assert video.duration_seconds == pytest.approx(2.0, abs=0.01)


def test_probe_mpeg_ts_clock(make_video: MakeVideo) -> None:
    info = probe(make_video("probe.ts", extra=("-bf", "2")))
    # MPEG-TS starts its clock at 1.4 s: the file's start time is what -ss counts from.
    assert info.start_time == pytest.approx(1.4, abs=0.1)
    assert info.video.start_time >= info.start_time
    assert info.video.time_base == Fraction(1, 90000)
    assert info.video.frame_count == 60
    assert info.video.frame_count_method == "packets"


def rotated_copy(src: Path, dest: Path) -> Path:
    # ffmpeg 5.1 writes a display matrix from the legacy "rotate" tag on stream copy.
    subprocess.run(
        [
            "ffmpeg",
            "-loglevel",
            "error",
            "-y",
            "-i",
            str(src),
            "-c",
            "copy",
            "-metadata:s:v:0",
            "rotate=90",
            str(dest),
        ],
        check=True,
    )
    return dest


def test_probe_rotation_and_display_size(src_mp4: Path, tmp_path: Path) -> None:
    video = probe(rotated_copy(src_mp4, tmp_path / "rotated.mp4")).video
    # ffmpeg turns this picture a quarter counter-clockwise for display.
    assert video.rotation == 270
    assert (video.width, video.height) == (160, 90)
    assert video.display_size == (90, 160)


@pytest.mark.parametrize(("transfer", "hdr"), [("smpte2084", True), ("arib-std-b67", True)])
def test_probe_hdr(make_video: MakeVideo, transfer: str, hdr: bool) -> None:
    colour = ("-color_primaries", "bt2020", "-colorspace", "bt2020nc", "-color_trc", transfer)
    video = probe(make_video(f"hdr-{transfer}.mp4", audio=False, extra=colour)).video
    assert video.color_transfer == transfer
    assert video.hdr is hdr


def test_probe_without_audio(make_video: MakeVideo) -> None:
    assert probe(make_video("silent.mp4", audio=False)).audio is None


def test_probe_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ProbeError, match="not found"):
        probe(tmp_path / "nope.mp4")


def test_probe_file_without_video(audio_only: Path) -> None:
    with pytest.raises(ProbeError, match="no video stream"):
        probe(audio_only)


def test_probe_garbage(garbage: Path) -> None:
    with pytest.raises(ProbeError) as caught:
        probe(garbage)
    assert isinstance(caught.value, BadInputError)


def test_probe_truncated_file(src_mp4: Path, tmp_path: Path) -> None:
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(src_mp4.read_bytes()[:2000])
    with pytest.raises(ProbeError):
        probe(truncated)
