"""split -> copy engine -> assemble gives back exactly the source's frames and audio."""

import itertools
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from stereo_infer.assemble import AssembleResult, Container, assemble
from stereo_infer.errors import AssembleInputError, BadInputError
from stereo_infer.framerate import FrameRate, plan_rate
from stereo_infer.io import local_path
from stereo_infer.probe import count_frames, probe
from stereo_types.plan import SplitPlan

Roundtrip = Callable[..., tuple[SplitPlan, AssembleResult]]
Convert = Callable[..., list[Path]]
Split = Callable[..., SplitPlan]

FRAME = 1 / 30


@pytest.mark.parametrize(
    ("segment_seconds", "pre_roll", "segments"),
    [
        (0.5, 0, 4),  # divides the 2 s source
        (0.7, 0, 3),  # does not: 21 + 21 + 18 frames
        (5.0, 0, 1),  # longer than the video
        (0.5, 4, 4),  # pre-roll shorter than a segment
        (0.3, 12, 7),  # pre-roll longer than a segment
        (5.0, 8, 1),  # pre-roll with a single segment
    ],
)
def test_roundtrip_is_frame_exact(
    src_mp4: Path,
    roundtrip: Roundtrip,
    hashes: Callable[[Path], list[str]],
    segment_seconds: float,
    pre_roll: int,
    segments: int,
) -> None:
    plan, result = roundtrip(src_mp4, segment_seconds, pre_roll=pre_roll)
    assert len(plan.segments) == segments
    assert plan.frame_count == 60 == result.frame_count
    for seg in plan.segments:
        assert seg.pre_roll_frames == min(pre_roll, seg.start_frame)
        assert count_frames(local_path(seg.input_uri)) == seg.input_frame_count
    assert hashes(result.output) == hashes(src_mp4)


def test_segments_start_with_a_keyframe_and_at_zero(
    src_mp4: Path, tmp_path: Path, split: Split
) -> None:
    plan = split(src_mp4, tmp_path, 0.5, pre_roll=3)
    for seg in plan.segments:
        first = subprocess.run(
            [
                "ffprobe",
                "-v",
                "error",
                "-select_streams",
                "v:0",
                "-read_intervals",
                "%+#1",
                "-show_entries",
                "packet=pts,flags",
                "-of",
                "csv=p=0",
                local_path(seg.input_uri),
            ],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.split()[0]
        assert first.startswith("0,K"), (seg.index, first)
        info = probe(local_path(seg.input_uri))
        assert not info.video.variable_frame_rate
        assert info.video.duration_seconds == pytest.approx(seg.input_frame_count * FRAME)


def test_pre_roll_segments_hold_the_frames_before_them(
    src_mp4: Path, tmp_path: Path, split: Split, hashes: Callable[[Path], list[str]]
) -> None:
    plan = split(src_mp4, tmp_path, 0.5, pre_roll=4)
    source = hashes(src_mp4)
    for seg in plan.segments:
        first = seg.start_frame - seg.pre_roll_frames
        assert (
            hashes(local_path(seg.input_uri)) == source[first : seg.start_frame + seg.frame_count]
        )


@pytest.mark.parametrize("container", [Container.MP4, Container.MKV])
def test_containers_and_audio_in_sync(
    src_mp4: Path,
    roundtrip: Roundtrip,
    hashes: Callable[[Path], list[str]],
    container: Container,
) -> None:
    _plan, result = roundtrip(src_mp4, 0.7, pre_roll=2, container=container)
    assert result.output.suffix == f".{container}"
    assert result.with_audio
    source, joined = probe(src_mp4), probe(result.output)
    assert container.value in joined.container or container is Container.MKV
    assert joined.audio is not None and source.audio is not None
    assert source.audio.duration_seconds is not None
    assert joined.audio.duration_seconds == pytest.approx(source.audio.duration_seconds, abs=FRAME)
    assert joined.video.frame_count == 60
    assert hashes(result.output) == hashes(src_mp4)


def test_ntsc_rate_stays_on_the_grid_across_many_segments(
    make_video: Callable[..., Path],
    roundtrip: Roundtrip,
    hashes: Callable[[Path], list[str]],
    pts: Callable[[Path], list[int]],
) -> None:
    # 6 frames at 30000/1001 last 200.2 ms, which mp4 rounds to whole ms.
    source = make_video("ntsc.mp4", rate="30000/1001", audio=False)
    plan, result = roundtrip(source, 0.2)
    assert len(plan.segments) == 10
    assert hashes(result.output) == hashes(source)
    stamps = pts(result.output)
    assert {b - a for a, b in itertools.pairwise(stamps)} == {stamps[1] - stamps[0]}
    assert probe(result.output).video.frame_rate == FrameRate(num=30000, den=1001)
    assert plan_rate(plan) == FrameRate(num=30000, den=1001)


def test_mkv_source(
    src_mkv: Path, roundtrip: Roundtrip, hashes: Callable[[Path], list[str]]
) -> None:
    _plan, result = roundtrip(src_mkv, 0.5)
    assert hashes(result.output) == hashes(src_mkv)


@pytest.mark.parametrize(("audio_delay", "video_delay"), [(0.2, 0.0), (0.0, 0.2)])
def test_audio_offset_is_kept(
    make_video: Callable[..., Path], roundtrip: Roundtrip, audio_delay: float, video_delay: float
) -> None:
    source = make_video(
        f"offset-{audio_delay}-{video_delay}.mp4", audio_delay=audio_delay, video_delay=video_delay
    )
    plan, result = roundtrip(source, 0.5)
    assert plan.audio is not None
    src, out = probe(source), probe(result.output)
    assert src.audio is not None and out.audio is not None
    src_offset = src.audio.start_time - src.video.start_time
    assert src_offset == pytest.approx(audio_delay - video_delay, abs=0.03)
    assert out.audio.start_time - out.video.start_time == pytest.approx(src_offset, abs=0.005)


def test_source_without_audio(make_video: Callable[..., Path], roundtrip: Roundtrip) -> None:
    plan, result = roundtrip(make_video("mute.mp4", audio=False), 0.5)
    assert plan.audio is None
    assert probe(result.output).audio is None


def test_rotated_source_is_split_upright(
    src_mp4: Path, tmp_path: Path, roundtrip: Roundtrip, hashes: Callable[[Path], list[str]]
) -> None:
    rotated = tmp_path / "rotated.mp4"
    subprocess.run(
        [
            "ffmpeg",
            "-loglevel",
            "error",
            "-i",
            str(src_mp4),
            "-c",
            "copy",
            "-metadata:s:v:0",
            "rotate=90",
            str(rotated),
        ],
        check=True,
    )
    plan, result = roundtrip(rotated, 0.5)
    assert (plan.width, plan.height) == (90, 160)
    assert hashes(result.output) == hashes(rotated)


def test_assemble_refuses_missing_segment(
    src_mp4: Path, tmp_path: Path, split: Split, convert: Convert
) -> None:
    plan = split(src_mp4, tmp_path / "seg", 0.5)
    outputs = convert(plan)
    outputs[2].unlink()
    with pytest.raises(AssembleInputError, match="segment 2 output is missing"):
        assemble(plan, outputs, tmp_path / "result.mp4", show_progress=False)
    assert not (tmp_path / "result.mp4").exists()


def test_assemble_refuses_mismatched_segments(
    src_mp4: Path, tmp_path: Path, split: Split, convert: Convert
) -> None:
    plan = split(src_mp4, tmp_path / "seg", 0.5)
    outputs = convert(plan)
    subprocess.run(
        [
            "ffmpeg",
            "-loglevel",
            "error",
            "-y",
            "-i",
            str(local_path(plan.segments[1].input_uri)),
            "-vf",
            "scale=320:180",
            "-c:v",
            "libx264",
            "-bf",
            "0",
            str(outputs[1]),
        ],
        check=True,
    )
    with pytest.raises(AssembleInputError, match="width 320 != 160"):
        assemble(plan, outputs, tmp_path / "result.mkv", show_progress=False)


def test_assemble_refuses_segment_with_pre_roll_left_in(
    src_mp4: Path, tmp_path: Path, split: Split
) -> None:
    plan = split(src_mp4, tmp_path / "seg", 0.5, pre_roll=3)
    inputs = [local_path(seg.input_uri) for seg in plan.segments]
    with pytest.raises(AssembleInputError, match="was the pre-roll dropped"):
        assemble(plan, inputs, tmp_path / "result.mp4", show_progress=False)


def test_assemble_needs_a_known_container(src_mp4: Path, tmp_path: Path, split: Split) -> None:
    plan = split(src_mp4, tmp_path / "seg", 5)
    first = local_path(plan.segments[0].input_uri)
    with pytest.raises(BadInputError, match=r"\.mp4 or \.mkv"):
        assemble(plan, [first], tmp_path / "out.avi", show_progress=False)


def test_assemble_refuses_a_plan_with_a_gap(src_mp4: Path, tmp_path: Path, split: Split) -> None:
    plan = split(src_mp4, tmp_path / "seg", 0.5)
    gap = plan.model_copy(update={"segments": [plan.segments[0], *plan.segments[2:]]})
    files = [local_path(seg.input_uri) for seg in gap.segments]
    with pytest.raises(AssembleInputError, match="expected segment 1 at frame 15"):
        assemble(gap, files, tmp_path / "out.mp4", show_progress=False)


def test_hdr_ten_bit_source_is_kept_lossless(
    make_video: Callable[..., Path], roundtrip: Roundtrip, hashes: Callable[[Path], list[str]]
) -> None:
    hdr = ("-pix_fmt", "yuv420p10le", "-color_primaries", "bt2020", "-colorspace", "bt2020nc")
    source = make_video(
        "hdr10.mp4", seconds=1, audio=False, extra=(*hdr, "-color_trc", "smpte2084")
    )
    plan, result = roundtrip(source, 0.4)
    assert plan.hdr
    video = probe(local_path(plan.segments[1].input_uri)).video
    assert (video.pix_fmt, video.color_transfer, video.color_primaries) == (
        "yuv420p10le",
        "smpte2084",
        "bt2020",
    )
    assert probe(result.output).video.hdr
    assert hashes(result.output) == hashes(source)
