"""The Backend protocol: submit an attempt, observe it, cancel a segment's attempts.

Observing is pure (from a snapshot of cluster state taken when the backend was built), so the
reconciler stays pure; submitting and cancelling are the backend's only side effects.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Protocol

from stereo_operator.views import SegmentView


class BackendUnavailable(Exception):
    """The VideoJob asks for a backend this operator cannot run (yet)."""


class AttemptPhase(StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    MISSING = "missing"


@dataclass(frozen=True, slots=True)
class AttemptState:
    phase: AttemptPhase
    finished_at: datetime | None = None
    reason: str | None = None
    message: str | None = None
    bad_input: bool = False
    job_name: str | None = None

    @classmethod
    def running(cls, job_name: str | None = None) -> AttemptState:
        return cls(AttemptPhase.RUNNING, job_name=job_name)

    @classmethod
    def succeeded(cls, finished_at: datetime, job_name: str | None = None) -> AttemptState:
        return cls(AttemptPhase.SUCCEEDED, finished_at=finished_at, job_name=job_name)

    @classmethod
    def failed(
        cls,
        reason: str,
        message: str,
        *,
        bad_input: bool = False,
        finished_at: datetime | None = None,
        job_name: str | None = None,
    ) -> AttemptState:
        return cls(
            AttemptPhase.FAILED,
            finished_at=finished_at,
            reason=reason,
            message=message,
            bad_input=bad_input,
            job_name=job_name,
        )

    @classmethod
    def missing(cls) -> AttemptState:
        return cls(AttemptPhase.MISSING)


@dataclass(frozen=True, slots=True)
class SegmentObservation:
    """What the backend knows about one segment's attempts."""

    current: AttemptState
    """The attempt the segment status names (status.attempts)."""
    latest_attempt: int = 0
    """The highest attempt number that exists, even if the status does not know it yet
    (the operator died between creating a Job and recording it)."""
    active_attempts: frozenset[int] = field(default_factory=frozenset)
    """Attempts still running (or not yet started)."""


class Backend(Protocol):
    name: str

    def observe(self, segment: SegmentView, attempt: int) -> SegmentObservation:
        """Pure: the state of `attempt` and of the segment's other attempts."""
        ...

    def submit(self, segment: SegmentView, attempt: int) -> str:
        """Start `attempt` (idempotent: starting it twice starts it once); its handle."""
        ...

    def cancel(self, segment: SegmentView, attempts: Iterable[int]) -> None:
        """Stop the given attempts of the segment; absent ones are fine."""
        ...


def observe_segments(
    backend: Backend, segments: Iterable[SegmentView]
) -> dict[int, SegmentObservation]:
    return {s.index: backend.observe(s, s.attempts) for s in segments}
