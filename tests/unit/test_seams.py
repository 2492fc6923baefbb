"""The seam score: a seam's depth jump against the median jump between frames inside segments."""

import pytest

from stereo_types.seams import DepthTrace, seam_score


def trace(*means: float) -> DepthTrace:
    return DepthTrace(means=list(means))


def test_a_seam_like_any_other_frame_scores_one() -> None:
    # Inside: steps of 0.01; across the seam: 0.01 too.
    score = seam_score([trace(0.50, 0.51, 0.52), trace(0.53, 0.54, 0.55)])
    assert score is not None
    assert (score.score, score.worst_segment, score.seams) == pytest.approx((1.0, 1, 1))


def test_the_worst_seam_is_named() -> None:
    score = seam_score([trace(0.5, 0.51), trace(0.52, 0.53), trace(0.63, 0.64)])
    assert score is not None
    assert score.worst_segment == 2
    assert score.score == pytest.approx(10.0)
    assert score.median_score == pytest.approx(5.5)


def test_segments_without_a_trace_are_left_out() -> None:
    assert seam_score([trace(0.5), None, trace(0.9)]) is None
    assert seam_score([trace(0.5, 0.6)]) is None
    score = seam_score([None, trace(0.1, 0.2), trace(0.3)])
    assert score is not None and (score.worst_segment, score.seams) == (2, 1)


def test_a_still_picture_scores_against_a_jump_too_small_to_see() -> None:
    score = seam_score([trace(0.5, 0.5), trace(0.5, 0.5)])
    assert score is not None and score.score == 0
    score = seam_score([trace(0.5, 0.5), trace(0.6, 0.6)])
    assert score is not None and score.score == pytest.approx(1000.0)
