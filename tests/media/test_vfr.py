"""Variable-frame-rate sources: each segment puts its window on the constant-rate grid
exactly as one ``fps`` pass over the whole source would."""

import itertools
from pathlib import Path

import pytest

from stereo_infer.framerate import FrameRate, plan_rate
from stereo_infer.io import local_path
from stereo_infer.probe import probe
from tests.media.pipeline import (
    Hashes,
    MakeVideo,
    Plan,
    Pts,
    Roundtrip,
    convert_segment,
    frame_hashes,
    single_pass_hashes,
)

PRE_ROLLS = [0, 5]
# Frames at 50 fps for 0.48 s (every odd one on a half of the 25 fps grid), then 12 at
# 12.5 fps (each shown twice), then 4 at 25 fps: 40 frames in 1.6 s, 25 fps on average.
TIES = "settb=1/1000,setpts='if(lt(N,24),20*N,if(lt(N,36),480+80*(N-24),1440+40*(N-36)))'"
TIES_ARGS = {"rate": 25, "seconds": 1.6, "extra": ("-enc_time_base", "1/1000", "-bf", "0")}


@pytest.fixture(scope="session")
def jittered(make_video: MakeVideo) -> Path:
    # Every even frame but the first is 0.3 frame late: timestamps off the
    # grid, but each frame still nearest to its own slot; no B-frames so that
    # mp4's average rate stays exactly 30.
    return make_video(
        "jittered.mp4",
        video_filter="settb=1/3000,setpts='(N+0.3*mod(N+1,2)*gt(N,0))/(30*TB)'",
        extra=("-enc_time_base", "1/3000", "-bf", "0"),
    )


@pytest.fixture(scope="session")
def dropped(make_video: MakeVideo) -> Path:
    # A 30 fps capture that lost every 7th frame (4th of each 7).
    return make_video("dropped.mp4", video_filter="select='not(eq(mod(n,7),3))'")


def assert_constant_rate(path: Path, rate: FrameRate, pts: Pts) -> None:
    video = probe(path).video
    assert not video.variable_frame_rate
    assert video.r_frame_rate == video.avg_frame_rate == rate
    steps = {b - a for a, b in itertools.pairwise(pts(path))}
    assert len(steps) == 1, steps


@pytest.mark.parametrize("pre_roll", PRE_ROLLS)
def test_jittered_source_keeps_every_frame(
    jittered: Path, roundtrip: Roundtrip, hashes: Hashes, pts: Pts, pre_roll: int
) -> None:
    video = probe(jittered).video
    assert video.variable_frame_rate
    assert video.frame_rate == FrameRate(num=30, den=1)
    plan, result = roundtrip(jittered, 0.7, pre_roll=pre_roll)
    assert plan.normalised_variable_rate
    assert all(seg.window.grid is not None for seg in plan.segments)
    assert plan.frame_count == 60 == result.frame_count
    assert_constant_rate(result.output, FrameRate(num=30, den=1), pts)
    assert hashes(result.output) == single_pass_hashes(jittered, plan) == hashes(jittered)


@pytest.mark.parametrize("pre_roll", PRE_ROLLS)
def test_source_with_dropped_frames_is_normalised(
    dropped: Path, roundtrip: Roundtrip, hashes: Hashes, pts: Pts, pre_roll: int
) -> None:
    video = probe(dropped).video
    assert video.variable_frame_rate
    assert video.frame_count == 51
    plan, result = roundtrip(dropped, 0.7, pre_roll=pre_roll)
    # Normalised to the probed average rate over the source's duration.
    expected = video.frame_rate.frames_in(video.duration_seconds)
    assert plan_rate(plan) == video.frame_rate
    assert plan.frame_count == expected == result.frame_count
    assert [s.frame_count for s in plan.segments[:-1]] == [plan.segment_frames] * (
        len(plan.segments) - 1
    )
    assert_constant_rate(result.output, video.frame_rate, pts)
    assert hashes(result.output) == single_pass_hashes(dropped, plan)


@pytest.mark.parametrize(
    ("name", "delay_ms", "pre_roll"),
    [
        ("ties.mp4", 0, 0),
        ("ties.mp4", 0, 3),
        # The video starts 13 ms (a third of a slot) after the audio.
        ("ties-late.mp4", 13, 3),
    ],
)
def test_frames_on_halves_of_the_grid(
    make_video: MakeVideo,
    roundtrip: Roundtrip,
    hashes: Hashes,
    pts: Pts,
    name: str,
    delay_ms: int,
    pre_roll: int,
) -> None:
    source = make_video(name, video_filter=f"{TIES}+{delay_ms}", audio=delay_ms > 0, **TIES_ARGS)
    video = probe(source).video
    assert video.variable_frame_rate
    assert video.frame_rate == FrameRate(num=25, den=1)
    # Windows of 7 slots start on halves, on repeated frames and on dropped ones.
    plan, result = roundtrip(source, 0.28, pre_roll=pre_roll)
    assert plan.segment_frames == 7
    assert plan.normalised_variable_rate
    assert plan.frame_count == 40 == result.frame_count
    single = single_pass_hashes(source, plan)
    assert len(set(single)) < len(single) < len(frame_hashes(source)) + 4  # dropped and repeated
    assert hashes(result.output) == single
    assert_constant_rate(result.output, FrameRate(num=25, den=1), pts)


def test_frames_on_halves_of_the_grid_when_the_first_frame_is_off_it(
    make_video: MakeVideo, plan: Plan, hashes: Hashes, tmp_path: Path
) -> None:
    source = make_video("ties-off-grid.mp4", video_filter=f"{TIES}+24", **TIES_ARGS)
    planned = plan(source, tmp_path, 0.2)
    first = planned.segments[0]
    convert_segment(first)
    single = single_pass_hashes(source, planned)
    assert hashes(local_path(first.output_uri)) == single[: first.frame_count]


def test_last_frame_rounding_to_the_end_of_the_stream(
    make_video: MakeVideo, roundtrip: Roundtrip, hashes: Hashes
) -> None:
    # 25 frames at 50 fps, then 14 at 12.5 fps: the last starts at 1.54 s and ends at 1.56 s.
    source = make_video(
        "last-on-a-half.mp4",
        rate=50,
        seconds=0.78,
        audio=False,
        video_filter="settb=1/1000,setpts='if(lt(N,25),20*N,500+80*(N-25))'",
        extra=("-enc_time_base", "1/1000", "-bf", "0"),
    )
    # One window: the whole source.
    plan, result = roundtrip(source, 5)
    assert hashes(result.output) == single_pass_hashes(source, plan)


@pytest.mark.parametrize("pre_roll", PRE_ROLLS)
def test_jittered_mpeg_ts(
    make_video: MakeVideo, roundtrip: Roundtrip, hashes: Hashes, pts: Pts, pre_roll: int
) -> None:
    source = make_video(
        "jittered.ts",
        video_filter="settb=1/3000,setpts='(N+0.3*mod(N+1,2)*gt(N,0))/(30*TB)'",
        extra=("-bf", "0"),
    )
    info = probe(source)
    assert info.start_time > 1  # MPEG-TS starts its clock at 1.4 s
    plan, result = roundtrip(source, 0.7, pre_roll=pre_roll)
    assert plan.frame_count == 60 == result.frame_count
    assert hashes(result.output) == frame_hashes(source, rate="30") == hashes(source)
    assert_constant_rate(result.output, FrameRate(num=30, den=1), pts)


def test_mpeg_ts_with_dropped_frames_is_normalised(
    make_video: MakeVideo, plan: Plan, roundtrip: Roundtrip, hashes: Hashes, tmp_path: Path
) -> None:
    source = make_video("dropped.ts", video_filter="select='not(eq(mod(n,7),3))'")
    planned = plan(source, tmp_path, 0.7, pre_roll=5)
    assert planned.normalised_variable_rate
    assert planned.duration_seconds == pytest.approx(probe(source).video.duration_seconds, abs=0.05)
    _plan, result = roundtrip(source, 0.7, pre_roll=5)
    assert hashes(result.output) == single_pass_hashes(source, planned)
