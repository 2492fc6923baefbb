"""What the `http` and `managed` backends share: attempts that this process started and keeps
track of in memory (no cluster object stands for them, unlike the `job` backend's Jobs).

A process-wide tracker (`AttemptTracker` subclass) holds one record per (segment, attempt),
changed only under its lock; each reconcile round builds a `TrackedBackend` over a copy of
the VideoJob's records taken at that moment, so observing stays pure.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from stereo_operator.backends.base import AttemptPhase, AttemptState, SegmentObservation
from stereo_operator.config import OperatorConfig
from stereo_operator.views import SegmentView
from stereo_types.layout import VideoJobRef
from stereo_types.videojob import VideoJobSpec

if TYPE_CHECKING:
    from stereo_operator.kube import Kube

CANCELLED = "Cancelled"
FINISHED_TTL = timedelta(hours=24)
"""How long the outcome of a finished attempt is remembered (the reconcile round needs it
until the segment's output is checked, seconds to minutes after)."""


@dataclass(slots=True)
class TrackedAttempt:
    """One attempt a tracker was given; mutated only under the tracker's lock."""

    videojob_uid: str
    segment_uid: str
    index: int
    attempt: int
    state: AttemptState

    @property
    def active(self) -> bool:
        return self.state.phase is AttemptPhase.RUNNING

    @property
    def submitted_at(self) -> datetime | None:
        return None


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    """What an observer sees of one attempt (a copy)."""

    segment_uid: str
    index: int
    attempt: int
    state: AttemptState
    submitted_at: datetime | None = None

    @property
    def active(self) -> bool:
        return self.state.phase is AttemptPhase.RUNNING


R = TypeVar("R", bound=TrackedAttempt)


class AttemptTracker(Generic[R]):
    """The records, their lock and clock, copies for observers, and cancelling."""

    cancel_message = "the operator stopped waiting"

    def __init__(self, clock: Callable[[], datetime]) -> None:
        self.clock = clock
        self._lock = threading.Lock()
        self._records: dict[tuple[str, int], R] = {}

    def snapshot(self, videojob_uid: str) -> list[AttemptRecord]:
        with self._lock:
            horizon = self.clock() - FINISHED_TTL
            for key in [
                k
                for k, r in self._records.items()
                if r.state.finished_at is not None and r.state.finished_at < horizon
            ]:
                del self._records[key]
            return [
                AttemptRecord(r.segment_uid, r.index, r.attempt, r.state, r.submitted_at)
                for r in self._records.values()
                if r.videojob_uid == videojob_uid
            ]

    def cancel(self, segment_uid: str, attempts: Iterable[int]) -> None:
        """Stop waiting for the attempts (absent or finished ones are fine)."""
        with self._lock:
            for attempt in attempts:
                record = self._records.get((segment_uid, attempt))
                if record is None or not record.active:
                    continue
                self._on_cancel(record)
                record.state = AttemptState.failed(
                    CANCELLED, self.cancel_message, finished_at=self.clock()
                )

    def _on_cancel(self, record: R) -> None:
        """What else cancelling an attempt takes (under the lock)."""


class TrackedBackend:
    """A backend's view of its tracker's records for one VideoJob, taken when it is built."""

    def __init__(
        self,
        ref: VideoJobRef,
        spec: VideoJobSpec,
        config: OperatorConfig,
        kube: Kube | None,
        tracker: AttemptTracker[Any],
    ) -> None:
        self.ref = ref
        self.spec = spec
        self.config = config
        self.kube = kube
        self._tracker = tracker
        self._records: dict[str, dict[int, AttemptRecord]] = {}
        for record in tracker.snapshot(ref.uid):
            self._records.setdefault(record.segment_uid, {})[record.attempt] = record

    def records(self, segment: SegmentView) -> dict[int, AttemptRecord]:
        return self._records.get(segment.uid, {})

    @staticmethod
    def observation(
        current: AttemptState, attempts: Mapping[int, AttemptState]
    ) -> SegmentObservation:
        return SegmentObservation(
            current=current,
            latest_attempt=max(attempts, default=0),
            active_attempts=frozenset(
                a for a, s in attempts.items() if s.phase is AttemptPhase.RUNNING
            ),
        )

    def cancel(self, segment: SegmentView, attempts: Iterable[int]) -> None:
        self._tracker.cancel(segment.uid, attempts)
