"""Where a segment attempt runs. Pick one with `backend_for`."""

from stereo_operator.backends.base import (
    AttemptPhase,
    AttemptState,
    Backend,
    BackendUnavailable,
    SegmentObservation,
    observe_segments,
)
from stereo_operator.backends.select import backend_for

__all__ = [
    "AttemptPhase",
    "AttemptState",
    "Backend",
    "BackendUnavailable",
    "SegmentObservation",
    "backend_for",
    "observe_segments",
]
