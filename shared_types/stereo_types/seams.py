"""Can a seam be seen? Each segment's depth trace, and the seam score of a VideoJob.

An engine that sees its depth maps writes, beside its segment output, the mean nearness of
every output frame (``DepthTrace``, at ``output URI + DEPTH_TRACE_SUFFIX``). The assemble
Job reads the traces, scores the seams and publishes the score beside the plan
(``SEAMS_FILE``), and the operator copies it into the VideoJob's status.

The score of a seam is the jump in mean nearness from one segment's last frame to the next
one's first, divided by the median jump between consecutive frames inside the segments: near
1, the seam moves the depth no more than any cut between two frames does; a segment that
starts cold (no pre-roll for a temporal depth model) shows as a score of many times that.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from itertools import pairwise

from pydantic import Field

from stereo_types.base import StatusModel

DEPTH_TRACE_SUFFIX = ".depth.json"
SEAMS_FILE = "seams.json"
# A still picture moves the depth by nothing inside its segments: measure its seams against
# a jump too small to see instead of dividing by zero.
MIN_INSIDE_JUMP = 1e-4


class DepthTrace(StatusModel):
    """One segment output's depth, frame by frame."""

    means: list[float] = Field(min_length=1)
    """Mean nearness (0 far .. 1 near) of each output frame's depth map, pre-roll excluded."""


class SeamScore(StatusModel):
    """How far the depth jumps where segments meet, against how far it moves inside them."""

    score: float = Field(ge=0)
    """The worst seam's jump divided by the median jump between frames inside segments."""
    worst_segment: int = Field(ge=1)
    """The segment that starts at the worst seam."""
    median_score: float = Field(ge=0)
    """The median seam's score."""
    seams: int = Field(ge=1)
    """Seams measured: those between two segments that both have a depth trace."""


def depth_trace_uri(output_uri: str) -> str:
    return output_uri + DEPTH_TRACE_SUFFIX


def seams_uri(plan_uri: str) -> str:
    """Where the assemble Job publishes the seam score: beside the plan it joined."""
    return plan_uri.rsplit("/", 1)[0] + "/" + SEAMS_FILE


def seam_score(traces: Sequence[DepthTrace | None]) -> SeamScore | None:
    """The score of every seam between consecutive traced segments (None: none to score)."""
    inside = [abs(b - a) for t in traces if t is not None for a, b in pairwise(t.means)]
    scale = max(statistics.median(inside) if inside else 0.0, MIN_INSIDE_JUMP)
    scores = {
        index: abs(after.means[0] - before.means[-1]) / scale
        for index, (before, after) in enumerate(pairwise(traces), start=1)
        if before is not None and after is not None
    }
    if not scores:
        return None
    worst = max(scores, key=lambda index: scores[index])
    return SeamScore(
        score=round(scores[worst], 3),
        worst_segment=worst,
        median_score=round(statistics.median(scores.values()), 3),
        seams=len(scores),
    )
