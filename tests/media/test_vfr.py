"""Variable-frame-rate sources are put on a constant grid before splitting."""

import itertools
from collections.abc import Callable
from pathlib import Path

import pytest

from stereo_infer.assemble import AssembleResult
from stereo_infer.framerate import FrameRate, plan_rate
from stereo_infer.probe import probe
from stereo_types.plan import SplitPlan

Roundtrip = Callable[..., tuple[SplitPlan, AssembleResult]]


@pytest.fixture(scope="session")
def jittered(make_video: Callable[..., Path]) -> Path:
    # Every even frame but the first is 0.3 frame late: timestamps off the
    # grid, but each frame still nearest to its own slot; no B-frames so that
    # mp4's average rate stays exactly 30.
    return make_video(
        "jittered.mp4",
        video_filter="settb=1/3000,setpts='(N+0.3*mod(N+1,2)*gt(N,0))/(30*TB)'",
        extra=("-enc_time_base", "1/3000", "-bf", "0"),
    )


@pytest.fixture(scope="session")
def dropped(make_video: Callable[..., Path]) -> Path:
    # A 30 fps capture that lost every 7th frame (4th of each 7).
    return make_video("dropped.mp4", video_filter="select='not(eq(mod(n,7),3))'")


def assert_constant_rate(path: Path, rate: FrameRate, pts: Callable[[Path], list[int]]) -> None:
    video = probe(path).video
    assert not video.variable_frame_rate
    assert video.r_frame_rate == video.avg_frame_rate == rate
    steps = {b - a for a, b in itertools.pairwise(pts(path))}
    assert len(steps) == 1, steps


def test_jittered_source_keeps_every_frame(
    jittered: Path,
    roundtrip: Roundtrip,
    hashes: Callable[[Path], list[str]],
    pts: Callable[[Path], list[int]],
) -> None:
    video = probe(jittered).video
    assert video.variable_frame_rate
    assert video.frame_rate == FrameRate(num=30, den=1)
    plan, result = roundtrip(jittered, 0.5, pre_roll=3)
    assert plan.normalised_variable_rate
    assert plan.frame_count == 60 == result.frame_count
    assert_constant_rate(result.output, FrameRate(num=30, den=1), pts)
    assert hashes(result.output) == hashes(jittered)


def test_source_with_dropped_frames_is_normalised(
    dropped: Path,
    roundtrip: Roundtrip,
    pts: Callable[[Path], list[int]],
) -> None:
    video = probe(dropped).video
    assert video.variable_frame_rate
    assert video.frame_count == 51
    plan, result = roundtrip(dropped, 0.5)
    # Normalised to the probed average rate over the source's duration.
    expected = video.frame_rate.frames_in(video.duration_seconds)
    assert plan_rate(plan) == video.frame_rate
    assert plan.frame_count == expected == result.frame_count
    assert [s.frame_count for s in plan.segments[:-1]] == [plan.segment_frames] * (
        len(plan.segments) - 1
    )
    assert_constant_rate(result.output, video.frame_rate, pts)
