"""Sources that make reading a window hard: reordered frames, open GOPs, rare keyframes,
rotation, containers without an index up front or with a clock that does not start at 0.

Each is planned, converted window by window with the copy engine and assembled; the result
must hold exactly the frames one decode of the whole source gives, in sync with its audio.
"""

import subprocess
from pathlib import Path

import pytest

from stereo_infer.assemble import Container
from stereo_infer.probe import probe
from stereo_types.plan import SplitPlan
from tests.media.pipeline import (
    Hashes,
    MakeVideo,
    Roundtrip,
    leading_frames,
    reordered,
    single_pass_hashes,
    top_level_boxes,
)

PRE_ROLLS = [0, 5]
# Keyframes every 12 frames: windows of 21 or 30 frames start inside a GOP.
GOP_12 = ("-bf", "3", "-g", "12", "-keyint_min", "12", "-sc_threshold", "0")


def assert_exact(source: Path, plan: SplitPlan, output: Path, hashes: Hashes) -> None:
    assert hashes(output) == single_pass_hashes(source, plan)


def assert_audio_in_sync(source: Path, output: Path) -> None:
    src, out = probe(source), probe(output)
    assert src.audio is not None and out.audio is not None
    offset = src.audio.start_time - src.video.start_time
    assert out.audio.start_time - out.video.start_time == pytest.approx(offset, abs=0.005)


def seeks(plan: SplitPlan) -> int:
    return sum(seg.window.seek_seconds is not None for seg in plan.segments)


@pytest.mark.parametrize("pre_roll", PRE_ROLLS)
def test_h264_with_b_frames(
    make_video: MakeVideo, roundtrip: Roundtrip, hashes: Hashes, pre_roll: int
) -> None:
    source = make_video("b-frames.mp4", extra=GOP_12)
    assert reordered(source)
    plan, result = roundtrip(source, 0.7, pre_roll=pre_roll)
    assert plan.keyframes == 5
    assert seeks(plan) == 2
    assert_exact(source, plan, result.output, hashes)
    assert_audio_in_sync(source, result.output)


# Two windows of 30 frames; the keyframe at 30 has leading pictures (decoded after it, shown
# before it). Without pre-roll the second window starts on that keyframe; a pre-roll of 1
# (x264 makes one leading picture) or 2 (x265 makes four) starts it on a leading picture.
@pytest.mark.parametrize("pre_roll", [0, 1])
def test_h264_open_gop(
    make_video: MakeVideo, roundtrip: Roundtrip, hashes: Hashes, pre_roll: int
) -> None:
    source = make_video(
        "open-gop.mp4",
        audio=False,
        extra=("-x264-params", "open_gop=1:keyint=30:min-keyint=30", "-bf", "3"),
    )
    assert leading_frames(source) > 0
    plan, result = roundtrip(source, 1.0, pre_roll=pre_roll)
    assert plan.keyframes == 2
    # On the keyframe the window seeks to it; before it, it decodes from frame 0.
    assert seeks(plan) == (1 if pre_roll == 0 else 0)
    assert plan.lead_frames == (0 if pre_roll == 0 else 30 - pre_roll)
    assert_exact(source, plan, result.output, hashes)


@pytest.mark.parametrize("pre_roll", [0, 2])
def test_hevc_open_gop_ten_bit(
    make_video: MakeVideo, roundtrip: Roundtrip, hashes: Hashes, pre_roll: int
) -> None:
    source = make_video(
        "hevc-open-gop.mp4",
        audio=False,
        codec="libx265",
        pix_fmt="yuv420p10le",
        extra=(
            "-x265-params",
            "keyint=30:min-keyint=30:open-gop=1:bframes=4:b-adapt=0:log-level=error",
        ),
    )
    assert leading_frames(source) >= 2
    plan, result = roundtrip(source, 1.0, pre_roll=pre_roll)
    assert plan.keyframes == 2
    assert seeks(plan) == (1 if pre_roll == 0 else 0)
    # The copy engine keeps the ten bits: lossless H.264 in the source's pixel format.
    assert probe(result.output).video.pix_fmt == "yuv420p10le"
    assert hashes(result.output, pix_fmt="yuv420p10le") == single_pass_hashes(
        source, plan, pix_fmt="yuv420p10le"
    )


@pytest.mark.parametrize("pre_roll", [0, 12])
def test_keyframes_rarer_than_segments(
    make_video: MakeVideo, roundtrip: Roundtrip, hashes: Hashes, pre_roll: int
) -> None:
    # One keyframe every 4 s, segments of 0.5 s: every segment decodes from frame 0.
    source = make_video(
        "rare-keyframes.mp4",
        audio=False,
        extra=("-g", "120", "-keyint_min", "120", "-sc_threshold", "0", "-bf", "2"),
    )
    plan, result = roundtrip(source, 0.5, pre_roll=pre_roll)
    assert (plan.keyframes, len(plan.segments)) == (1, 4)
    assert seeks(plan) == 0
    # Each window decodes every frame before its first one.
    assert [seg.window.lead_frames for seg in plan.segments] == [
        seg.start_frame - seg.pre_roll_frames for seg in plan.segments
    ]
    assert plan.lead_frames > 0
    assert_exact(source, plan, result.output, hashes)


@pytest.mark.parametrize("pre_roll", [5])
def test_rotated_source_comes_out_upright(
    make_video: MakeVideo,
    roundtrip: Roundtrip,
    hashes: Hashes,
    media_dir: Path,
    pre_roll: int,
) -> None:
    # ffmpeg 5.1 has no -display_rotation; on a stream copy it turns the legacy rotate tag
    # into a display matrix.
    source = media_dir / "rotated.mp4"
    if not source.exists():
        upright = make_video("b-frames.mp4", extra=GOP_12)
        subprocess.run(
            [
                *("ffmpeg", "-nostdin", "-loglevel", "error", "-i", str(upright)),
                *("-c", "copy", "-metadata:s:v:0", "rotate=90", str(source)),
            ],
            check=True,
        )
    assert probe(source).video.rotation in (90, 270)
    plan, result = roundtrip(source, 1.0, pre_roll=pre_roll)
    assert (plan.width, plan.height) == (90, 160)
    video = probe(result.output).video
    assert (video.width, video.height, video.rotation) == (90, 160, 0)
    assert_exact(source, plan, result.output, hashes)
    assert_audio_in_sync(source, result.output)


@pytest.mark.parametrize(
    ("name", "extra", "pre_roll"),
    [
        # Where mp4 keeps its index changes how a seek reads, not what it decodes.
        ("index-at-end.mp4", (), 5),
        ("faststart.mp4", ("-movflags", "+faststart"), 0),
        ("source.mkv", (), 0),
        ("source.mkv", (), 5),
        ("source.ts", (), 0),
        ("source.ts", (), 5),
    ],
)
def test_containers(
    make_video: MakeVideo,
    roundtrip: Roundtrip,
    hashes: Hashes,
    name: str,
    extra: tuple[str, ...],
    pre_roll: int,
) -> None:
    source = make_video(name, extra=(*GOP_12, *extra))
    info = probe(source)
    if name.endswith(".mp4"):
        boxes = top_level_boxes(source)
        assert (boxes.index("moov") < boxes.index("mdat")) == ("faststart" in name)
    if name.endswith(".ts"):
        assert info.start_time > 1  # MPEG-TS starts its clock at 1.4 s
    plan, result = roundtrip(source, 1.0, pre_roll=pre_roll)
    assert plan.frame_count == 60 == result.frame_count
    assert seeks(plan) == 1
    assert_exact(source, plan, result.output, hashes)
    assert_audio_in_sync(source, result.output)


def test_audio_before_video_in_the_stream_order(
    make_video: MakeVideo, roundtrip: Roundtrip, hashes: Hashes, media_dir: Path
) -> None:
    source = make_video("audio-first.mkv", extra=(*GOP_12, "-map", "1:a", "-map", "0:v"))
    info = probe(source)
    assert [s.type for s in info.streams] == ["audio", "video"]
    plan, result = roundtrip(source, 1.0, pre_roll=5, container=Container.MKV)
    assert plan.audio is not None and plan.audio.stream_index == 0
    assert {seg.window.stream_index for seg in plan.segments} == {1}
    assert_exact(source, plan, result.output, hashes)
    assert probe(result.output).audio is not None


@pytest.mark.parametrize("pre_roll", [5])
def test_mp4_cut_by_stream_copy(
    make_video: MakeVideo,
    roundtrip: Roundtrip,
    hashes: Hashes,
    media_dir: Path,
    pre_roll: int,
) -> None:
    # Cutting at 0.5 s without re-encoding keeps the GOP before the cut; the edit list
    # hides its first frames, which the demuxer marks discarded.
    full = make_video("before-cut.mp4", extra=("-bf", "3", "-g", "24"))
    source = media_dir / "cut.mp4"
    if not source.exists():
        subprocess.run(
            [
                *("ffmpeg", "-nostdin", "-loglevel", "error", "-ss", "0.5", "-i", str(full)),
                *("-c", "copy", str(source)),
            ],
            check=True,
        )
    plan, result = roundtrip(source, 1.0, pre_roll=pre_roll)
    assert_exact(source, plan, result.output, hashes)
    assert_audio_in_sync(source, result.output)
