"""plan -> copy engine over each window of the source -> assemble gives back exactly the
source's frames and audio."""

import itertools
import subprocess
from fractions import Fraction
from pathlib import Path

import pytest

from stereo_infer.assemble import Container, assemble
from stereo_infer.errors import AssembleInputError, BadInputError
from stereo_infer.framerate import FrameRate, plan_rate
from stereo_infer.io import local_path
from stereo_infer.probe import probe
from stereo_infer.window import SegmentInput, decode_to_file
from tests.media.pipeline import (
    ConvertAll,
    Hashes,
    MakeVideo,
    Plan,
    Pts,
    Roundtrip,
    convert_segment,
    payload_hashes,
)

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
    hashes: Hashes,
    segment_seconds: float,
    pre_roll: int,
    segments: int,
) -> None:
    plan, result = roundtrip(src_mp4, segment_seconds, pre_roll=pre_roll)
    assert len(plan.segments) == segments
    assert plan.frame_count == 60 == result.frame_count
    source = hashes(src_mp4)
    for seg in plan.segments:
        assert seg.pre_roll_frames == min(pre_roll, seg.start_frame)
        assert seg.window.pre_roll_frames == seg.pre_roll_frames
        assert seg.window.frame_count == seg.frame_count
        # Each output holds exactly the frames its segment owns, the pre-roll dropped.
        owned = source[seg.start_frame : seg.start_frame + seg.frame_count]
        assert hashes(local_path(seg.output_uri)) == owned
    assert hashes(result.output) == source


def test_segments_read_their_window_of_the_source(
    src_mp4: Path, tmp_path: Path, plan: Plan, pts: Pts
) -> None:
    """No segment file is written: each segment names the source and the frames it owns."""
    planned = plan(src_mp4, tmp_path, 0.5, pre_roll=3)
    assert [p.name for p in tmp_path.iterdir()] == ["plan.json"]
    frames = pts(src_mp4)
    assert planned.source_bytes == src_mp4.stat().st_size
    assert planned.keyframes >= 1
    for seg in planned.segments:
        window = seg.window
        assert seg.input_uri == src_mp4.as_uri()
        assert window.stream_index == probe(src_mp4).video.index
        first = seg.start_frame - seg.pre_roll_frames
        assert window.first_pts == frames[first]
        assert window.last_pts == frames[seg.start_frame + seg.frame_count - 1]
        assert window.output_frames == seg.pre_roll_frames + seg.frame_count
        assert window.grid is None
        assert 0 < window.bytes <= planned.source_bytes
    # The first keyframe needs no seek.
    assert planned.segments[0].window.seek_seconds is None


def test_a_conversion_reports_what_it_read(src_mp4: Path, tmp_path: Path, plan: Plan) -> None:
    seg = plan(src_mp4, tmp_path, 0.7, pre_roll=4).segments[1]
    result = convert_segment(seg)
    assert result.frames == seg.frame_count
    # A local source counts its window's share of the video packets.
    assert 0 < result.input_bytes == seg.window.bytes < src_mp4.stat().st_size
    assert result.video_seconds == pytest.approx(seg.duration_seconds)


def assert_frames_on_the_grid(path: Path, rate: Fraction, frames: int, pts: Pts) -> None:
    """Frame i shows at i / rate from the first (to the container's precision)."""
    video = probe(path).video
    times = [stamp * video.time_base for stamp in pts(path)]
    assert len(times) == frames
    tick = max(video.time_base, Fraction(1, 1_000_000))
    late = max(abs(t - times[0] - i / rate) for i, t in enumerate(times))
    assert late <= tick, f"frames up to {float(late):.3f} s off the grid"
    assert video.duration_seconds == pytest.approx(frames / rate, abs=float(1 / rate))


@pytest.mark.parametrize(
    "container",
    [
        Container.MP4,
        Container.MKV,
    ],
)
def test_containers_and_audio_in_sync(
    src_mp4: Path,
    roundtrip: Roundtrip,
    hashes: Hashes,
    pts: Pts,
    container: Container,
) -> None:
    plan, result = roundtrip(src_mp4, 0.7, pre_roll=2, container=container)
    assert plan.audio is not None
    assert (plan.audio.uri, plan.audio.stream_index, plan.audio.codec) == (
        src_mp4.as_uri(),
        1,
        "aac",
    )
    assert result.output.suffix == f".{container}"
    assert result.audio_tracks == 1
    source, joined = probe(src_mp4), probe(result.output)
    assert container.value in joined.container or container is Container.MKV
    assert joined.audio is not None and source.audio is not None
    assert source.audio.duration_seconds is not None
    assert joined.audio.duration_seconds == pytest.approx(source.audio.duration_seconds, abs=FRAME)
    assert joined.video.frame_count == 60
    assert hashes(result.output) == hashes(src_mp4)
    # The audio is the source's, stream-copied packet for packet.
    assert payload_hashes(result.output) == payload_hashes(src_mp4)
    assert_frames_on_the_grid(result.output, Fraction(30), 60, pts)


def test_ntsc_rate_stays_on_the_grid_across_many_segments(
    make_video: MakeVideo,
    roundtrip: Roundtrip,
    hashes: Hashes,
    pts: Pts,
) -> None:
    # 6 frames at 30000/1001 last 200.2 ms, which mp4 rounds to whole ms.
    source = make_video("ntsc.mp4", rate="30000/1001", seconds=1, audio=False)
    plan, result = roundtrip(source, 0.2)
    assert len(plan.segments) == 5
    assert hashes(result.output) == hashes(source)
    stamps = pts(result.output)
    assert {b - a for a, b in itertools.pairwise(stamps)} == {stamps[1] - stamps[0]}
    assert probe(result.output).video.frame_rate == FrameRate(num=30000, den=1001)
    assert plan_rate(plan) == FrameRate(num=30000, den=1001)


@pytest.mark.parametrize(("audio_delay", "video_delay"), [(0.2, 0.0), (0.0, 0.2)])
def test_audio_offset_is_kept(
    make_video: MakeVideo, roundtrip: Roundtrip, audio_delay: float, video_delay: float
) -> None:
    source = make_video(
        f"offset-{audio_delay}-{video_delay}.mp4", audio_delay=audio_delay, video_delay=video_delay
    )
    plan, result = roundtrip(source, 1.0)
    assert plan.audio is not None
    src, out = probe(source), probe(result.output)
    assert src.audio is not None and out.audio is not None
    src_offset = src.audio.start_time - src.video.start_time
    assert src_offset == pytest.approx(audio_delay - video_delay, abs=0.03)
    assert plan.audio.offset_seconds == pytest.approx(src_offset, abs=1e-6)
    assert out.audio.start_time - out.video.start_time == pytest.approx(src_offset, abs=0.005)


def test_source_without_audio(make_video: MakeVideo, roundtrip: Roundtrip) -> None:
    plan, result = roundtrip(make_video("mute.mp4", audio=False), 1.0)
    assert plan.audio is None
    assert result.audio_tracks == 0
    assert probe(result.output).audio is None


def test_assemble_refuses_missing_segment(
    src_mp4: Path, tmp_path: Path, plan: Plan, convert_all: ConvertAll
) -> None:
    planned = plan(src_mp4, tmp_path / "seg", 0.7)
    outputs = convert_all(planned)
    outputs[2].unlink()
    with pytest.raises(AssembleInputError, match="segment 2 output is missing"):
        assemble(planned, outputs, tmp_path / "result.mp4", show_progress=False)
    assert not (tmp_path / "result.mp4").exists()


def test_assemble_refuses_mismatched_segments(
    src_mp4: Path, tmp_path: Path, plan: Plan, convert_all: ConvertAll
) -> None:
    planned = plan(src_mp4, tmp_path / "seg", 1)
    outputs = convert_all(planned)
    scaled = tmp_path / "scaled.mp4"
    subprocess.run(
        [
            *("ffmpeg", "-loglevel", "error", "-y", "-i", str(outputs[1])),
            *("-vf", "scale=320:180", "-c:v", "libx264", "-bf", "0", str(scaled)),
        ],
        check=True,
    )
    scaled.replace(outputs[1])
    with pytest.raises(AssembleInputError, match="width 320 != 160"):
        assemble(planned, outputs, tmp_path / "result.mkv", show_progress=False)
    assert not (tmp_path / "result.mkv").exists()


def test_assemble_refuses_segment_with_pre_roll_left_in(
    src_mp4: Path, tmp_path: Path, plan: Plan
) -> None:
    planned = plan(src_mp4, tmp_path / "seg", 1, pre_roll=3)
    video = probe(src_mp4).video
    outputs = []
    for seg in planned.segments:
        out = tmp_path / f"{seg.index}.mp4"
        # An engine that forgot to drop the warm-up frames.
        decode_to_file(SegmentInput(str(src_mp4), video, seg.window), out, drop_pre_roll=False)
        outputs.append(out)
    with pytest.raises(AssembleInputError, match="was the pre-roll dropped"):
        assemble(planned, outputs, tmp_path / "result.mp4", show_progress=False)


def test_assemble_needs_a_known_container(src_mp4: Path, tmp_path: Path, plan: Plan) -> None:
    planned = plan(src_mp4, tmp_path / "seg", 5)
    convert_segment(planned.segments[0])
    first = local_path(planned.segments[0].output_uri)
    with pytest.raises(BadInputError, match=r"\.mp4 or \.mkv"):
        assemble(planned, [first], tmp_path / "out.avi", show_progress=False)


def test_assemble_refuses_a_plan_with_a_gap(src_mp4: Path, tmp_path: Path, plan: Plan) -> None:
    planned = plan(src_mp4, tmp_path / "seg", 0.5)
    gap = planned.model_copy(update={"segments": [planned.segments[0], *planned.segments[2:]]})
    files = [local_path(seg.output_uri) for seg in gap.segments]
    with pytest.raises(AssembleInputError, match="expected segment 1 at frame 15"):
        assemble(gap, files, tmp_path / "out.mp4", show_progress=False)


def test_assemble_refuses_a_missing_audio_source(
    src_mp4: Path, tmp_path: Path, plan: Plan, convert_all: ConvertAll
) -> None:
    planned = plan(src_mp4, tmp_path / "seg", 1)
    outputs = convert_all(planned)
    gone = tmp_path / "gone.mp4"
    with pytest.raises(AssembleInputError, match="source is missing"):
        assemble(planned, outputs, tmp_path / "out.mp4", source=gone, show_progress=False)
    # A source without the plan's audio stream (replaced after planning?).
    silent = tmp_path / "silent.mp4"
    subprocess.run(
        ["ffmpeg", "-loglevel", "error", "-i", str(src_mp4), "-an", "-c", "copy", str(silent)],
        check=True,
    )
    with pytest.raises(AssembleInputError, match="no audio stream 1 in"):
        assemble(planned, outputs, tmp_path / "out.mp4", source=silent, show_progress=False)
    assert not (tmp_path / "out.mp4").exists()


def test_hdr_ten_bit_source_is_kept_lossless(
    make_video: MakeVideo, roundtrip: Roundtrip, hashes: Hashes
) -> None:
    colour = ("-color_primaries", "bt2020", "-colorspace", "bt2020nc", "-color_trc", "smpte2084")
    source = make_video("hdr10.mp4", seconds=1, audio=False, pix_fmt="yuv420p10le", extra=colour)
    plan, result = roundtrip(source, 0.5)
    assert plan.hdr
    video = probe(local_path(plan.segments[1].output_uri)).video
    assert (video.pix_fmt, video.color_transfer, video.color_primaries) == (
        "yuv420p10le",
        "smpte2084",
        "bt2020",
    )
    assert probe(result.output).video.hdr
    assert hashes(result.output) == hashes(source)
