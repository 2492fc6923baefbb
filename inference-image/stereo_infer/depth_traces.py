"""The seam score at assembly: read each segment's depth trace, publish the score beside the
plan, where the operator reads it into the VideoJob's status (``stereo_types.seams``)."""

from __future__ import annotations

import logging
from pathlib import Path

from pydantic import ValidationError

from stereo_infer.errors import InputNotFoundError
from stereo_infer.io import fetch_input, publish_output
from stereo_types.plan import SplitPlan
from stereo_types.seams import (
    SEAMS_FILE,
    DepthTrace,
    SeamScore,
    depth_trace_uri,
    seam_score,
    seams_uri,
)

_log = logging.getLogger(__name__)


def score_seams(plan: SplitPlan, plan_uri: str, work: Path) -> SeamScore | None:
    """Score the plan's seams from its segments' traces and publish the score beside
    ``plan_uri``; None (and nothing published) where no two neighbours have a trace."""
    traces = [_trace(seg.output_uri, work / f"{seg.index:05d}") for seg in plan.segments]
    score = seam_score(traces)
    if score is not None:
        work.mkdir(parents=True, exist_ok=True)
        local = work / SEAMS_FILE
        local.write_text(score.model_dump_json(by_alias=True), encoding="utf-8")
        publish_output(local, seams_uri(plan_uri))
    return score


def _trace(output_uri: str, folder: Path) -> DepthTrace | None:
    """A segment's depth trace; None where its engine wrote none (copy, iw3) or it is bad."""
    try:
        path = fetch_input(depth_trace_uri(output_uri), folder)
    except InputNotFoundError:
        return None
    try:
        return DepthTrace.model_validate_json(path.read_bytes())
    except ValidationError as exc:
        _log.warning("ignoring the depth trace of %s: %s", output_uri, exc)
        return None
