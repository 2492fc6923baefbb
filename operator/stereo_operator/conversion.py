"""Conversion figures: what one segment's conversion took, and all of a VideoJob's together.

A segment's figures are recorded in the same status patch as its completion, from what the
status and spec already hold (the attempt's start, the frame count, the attempts) plus the
input's size from storage; they are a pure function of those, so recording twice gives the
same figures.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from stereo_operator.views import SegmentView
from stereo_types.segment import SegmentCompletion, SegmentConversion
from stereo_types.videojob import ConversionSummary

if TYPE_CHECKING:  # reconcile imports this module
    from stereo_operator.reconcile import SegmentPatch

MEGABYTE = 1_000_000
# Figures are rounded so a status written twice compares equal and stays short.
_DIGITS = 3


def _round(value: float) -> float:
    return round(value, _DIGITS)


def attempt_start(view: SegmentView) -> datetime | None:
    """When the attempt that produced the output started (the first one's start for a
    status written before attempt starts were recorded)."""
    return view.status.attempt_start_time or view.status.start_time


def segment_figures(view: SegmentView, completion: SegmentCompletion) -> SegmentConversion | None:
    """The segment's conversion figures; None when no attempt start is known.

    The input is the segment's window of the source: its bytes are the plan's count of the
    video packets it reads.
    """
    started = attempt_start(view)
    window = view.spec.window
    input_bytes = window.bytes if window is not None and window.bytes else None
    if started is None:
        return None
    wall = _round(max(0.0, (completion.event_time - started).total_seconds()))
    frames = view.spec.frame_count
    per_mb = None
    if input_bytes and wall > 0:
        per_mb = _round(wall / (input_bytes / MEGABYTE))
    return SegmentConversion(
        wall_seconds=wall,
        frames=frames,
        frames_per_second=_round(frames / wall) if wall > 0 else None,
        input_bytes=input_bytes,
        seconds_per_mb=per_mb,
        attempts=view.status.attempts,
    )


def with_figures(patch: SegmentPatch) -> tuple[SegmentPatch, SegmentConversion | None]:
    """A completion's patch with the segment's conversion figures added, and the figures."""
    if patch.completed is None:
        return patch, None
    figures = segment_figures(patch.segment, patch.completed)
    if figures is None:
        return patch, None
    return replace(patch, patch={**patch.patch, "conversion": figures.to_wire()}), figures


def summary(figures: Iterable[SegmentConversion]) -> ConversionSummary | None:
    """The figures together; None when no segment has any."""
    measured = list(figures)
    if not measured:
        return None
    frames = sum(f.frames for f in measured)
    seconds = sum(f.wall_seconds for f in measured)
    sized = [f for f in measured if f.input_bytes and f.wall_seconds > 0]
    megabytes = sum(f.input_bytes or 0 for f in sized) / MEGABYTE
    sized_seconds = sum(f.wall_seconds for f in sized)
    return ConversionSummary(
        segments_measured=len(measured),
        frames=frames,
        conversion_seconds=_round(seconds),
        frames_per_second=_round(frames / seconds) if seconds > 0 else None,
        seconds_per_mb=_round(sized_seconds / megabytes) if megabytes > 0 else None,
    )


def summary_wire(figures: Iterable[SegmentConversion]) -> dict[str, Any] | None:
    found = summary(figures)
    return found.to_wire() if found is not None else None
