"""Pure planning arithmetic, no ffmpeg."""

from fractions import Fraction

import pytest

from stereo_infer.errors import BadInputError
from stereo_infer.framerate import FrameRate
from stereo_infer.split import (
    SegmentSpan,
    branch_count,
    branch_cut_frames,
    plan_spans,
    segment_frame_count,
)


def test_plan_spans_cover_every_frame_once() -> None:
    spans = plan_spans(total_frames=100, segment_frames=30, pre_roll=5)
    assert spans == [
        SegmentSpan(0, 0, 30, 0),
        SegmentSpan(1, 30, 30, 5),
        SegmentSpan(2, 60, 30, 5),
        SegmentSpan(3, 90, 10, 5),
    ]
    covered = [f for s in spans for f in range(s.start_frame, s.start_frame + s.frame_count)]
    assert covered == list(range(100))


def test_pre_roll_longer_than_a_segment_stops_at_frame_zero() -> None:
    spans = plan_spans(total_frames=40, segment_frames=10, pre_roll=25)
    assert [s.pre_roll_frames for s in spans] == [0, 10, 20, 25]


def test_segment_longer_than_video() -> None:
    assert plan_spans(60, 300, 0) == [SegmentSpan(0, 0, 60, 0)]


@pytest.mark.parametrize(
    ("seconds", "rate", "frames"),
    [
        (10, FrameRate(num=30000, den=1001), 300),
        (1, FrameRate(num=24, den=1), 24),
        (0.01, FrameRate(num=25, den=1), 1),
    ],
)
def test_segment_frame_count_rounds_to_whole_frames(
    seconds: float, rate: FrameRate, frames: int
) -> None:
    assert segment_frame_count(seconds, rate) == frames


@pytest.mark.parametrize("seconds", [0, -1, float("nan"), float("inf")])
def test_segment_seconds_must_be_positive(seconds: float) -> None:
    with pytest.raises(BadInputError):
        segment_frame_count(seconds, FrameRate(num=30, den=1))


@pytest.mark.parametrize(("s", "k", "branches"), [(30, 0, 1), (30, 5, 2), (30, 30, 2), (9, 12, 3)])
def test_branch_count(s: int, k: int, branches: int) -> None:
    assert branch_count(s, k) == branches


def test_branch_segments_never_overlap() -> None:
    for s, k in [(30, 5), (9, 12), (10, 25), (7, 7)]:
        b = branch_count(s, k)
        spans = plan_spans(500, s, k)
        for first, second in zip(spans, spans[b:], strict=False):
            assert (
                first.start_frame + first.frame_count <= second.start_frame - second.pre_roll_frames
            )


def test_branch_cut_frames() -> None:
    assert branch_cut_frames(first_length=30, segment_frames=30, pre_roll=5, upto=120) == [
        30,
        65,
        100,
    ]


def test_frame_rate_snaps_to_standard_rates() -> None:
    assert FrameRate.from_fraction(Fraction(2000, 67)).snapped() == FrameRate(num=30000, den=1001)
    assert FrameRate.from_fraction(Fraction(1530, 59)).snapped() == FrameRate(num=1530, den=59)
    assert FrameRate.parse("0/0") is None
    assert FrameRate.parse("30000/1001") == FrameRate(num=30000, den=1001)
