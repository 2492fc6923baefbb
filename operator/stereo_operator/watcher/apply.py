"""Applying a StorageEvent to its Segment's status.completion.

The rules:

* the key must parse as a segment output under one of the workspace roots;
* the Segment ``<videojob>-<index:05d>`` in the key's namespace must exist, carry the key's
  VideoJob UID (else the object belongs to an older incarnation) and name the event's URI as
  its outputUri;
* the completion is written only when ``should_replace_completion(current, incoming)``
  (stereo_types.segment: GCS generation, else S3 sequencer, else event time): a duplicate, replay or
  older event never changes a recorded completion;
* an event whose notification did not carry the object's size (UnsizedEvent: Cloud Storage
  payload format NONE) is completed from a read of the notified generation (objects.py),
  made only once the event is known to name the Segment's output and to be newer than what
  is recorded;
* the merge patch carries the resourceVersion that was read, so a concurrent writer (another
  watcher replica, the operator) makes it fail with 409 and the decision is taken again on
  the fresh object: nothing can regress a newer completion.

``Applier.apply`` makes one attempt and raises RetryLater when the API server cannot be
reached; ``Delivery`` adds bounded concurrency, retries with backoff, metrics and logs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import ValidationError

from stereo_operator.watcher.kube import (
    ApiConflict,
    ApiForbidden,
    ApiNotFound,
    ApiRejected,
    ApiUnavailable,
    KubeClient,
    segment_path,
    videojob_path,
)
from stereo_operator.watcher.metrics import WatcherMetrics
from stereo_operator.watcher.objects import ObjectStat, StatDenied, StatUnavailable
from stereo_operator.watcher.parsers import Notification, UnsizedEvent
from stereo_types.base import utc_now
from stereo_types.events import StorageEvent, StorageEventKind
from stereo_types.layout import SegmentRef, StorageRoot
from stereo_types.segment import (
    SegmentCompletion,
    compare_completions,
    should_replace_completion,
)

log = logging.getLogger("stereo_operator.watcher")


class Outcome(StrEnum):
    APPLIED = "applied"
    DUPLICATE = "duplicate"
    """The recorded completion is exactly as new as the event."""
    IGNORED = "ignored"
    """Acknowledged without a change (reason says why)."""
    REJECTED = "rejected"
    """The API server refused permanently (400, 422): acknowledged, counted as an error."""


@dataclass(frozen=True, slots=True)
class Result:
    outcome: Outcome
    reason: str = ""
    detail: str = ""
    ref: SegmentRef | None = None
    completion: SegmentCompletion | None = None


class RetryLater(Exception):
    """The event could not be applied now; it must not be acknowledged."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


def completion_patch(completion: SegmentCompletion, resource_version: str) -> dict[str, Any]:
    """A merge patch replacing status.completion as a whole (absent fields set to null, or
    a merge patch would keep e.g. an older report's generation) under an optimistic lock."""
    wire = completion.to_wire()
    full = {
        (info.alias or name): wire.get(info.alias or name)
        for name, info in SegmentCompletion.model_fields.items()
    }
    return {"metadata": {"resourceVersion": resource_version}, "status": {"completion": full}}


def _recorded(segment: dict[str, Any]) -> SegmentCompletion | None:
    raw = (segment.get("status") or {}).get("completion")
    if not raw:
        return None
    try:
        return SegmentCompletion.model_validate(raw)
    except ValidationError:
        log.warning(
            "recorded completion is not valid; it will be replaced",
            extra={"segment": segment.get("metadata", {}).get("name")},
        )
        return None


def _not_newer(
    current: SegmentCompletion | None, incoming: SegmentCompletion, ref: SegmentRef
) -> Result | None:
    """Why incoming must not replace the recorded completion, or None if it should."""
    if should_replace_completion(current, incoming):
        return None
    assert current is not None
    if compare_completions(incoming, current) == 0:
        return Result(Outcome.DUPLICATE, "already-recorded", ref=ref)
    return Result(Outcome.IGNORED, "older-than-recorded", ref=ref)


class _KeyedLocks:
    """One asyncio.Lock per key, dropped when nobody holds or waits for it."""

    def __init__(self) -> None:
        self._locks: dict[tuple[str, str], tuple[asyncio.Lock, int]] = {}

    @contextlib.asynccontextmanager
    async def hold(self, key: tuple[str, str]) -> AsyncIterator[None]:
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users <= 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)


class Applier:
    """One attempt at applying one event, against the API server."""

    def __init__(
        self,
        kube: KubeClient,
        roots: Sequence[StorageRoot],
        *,
        namespaces: Sequence[str] = (),
        conflict_retries: int = 10,
        pending_segment_grace: float = 30.0,
        object_stat: ObjectStat | None = None,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._kube = kube
        self._roots = list(roots)
        self._namespaces = frozenset(namespaces)
        self._conflict_retries = conflict_retries
        self._pending_grace = pending_segment_grace
        self._object_stat = object_stat
        self._clock = clock
        self._locks = _KeyedLocks()
        self._told_unsized = False
        self._warned_size_unknown = False

    def segment_of(self, event: StorageEvent) -> SegmentRef | None:
        for root in self._roots:
            ref = event.segment_ref(root)
            if ref is not None:
                return ref
        return None

    async def apply(self, event: StorageEvent) -> Result:
        """Apply once; RetryLater if the API server cannot be reached or keeps conflicting."""
        if event.kind is not StorageEventKind.CREATED:
            return Result(Outcome.IGNORED, "not-a-creation")
        ref = self.segment_of(event)
        if ref is None:
            return Result(Outcome.IGNORED, "not-segment-output")
        if self._namespaces and ref.videojob.namespace not in self._namespaces:
            return Result(Outcome.IGNORED, "namespace-not-watched", ref=ref)
        # One event per Segment at a time in this process: no self-inflicted conflicts.
        async with self._locks.hold((ref.videojob.namespace, ref.segment_name)):
            try:
                return await self._apply(event, ref)
            except ApiForbidden as exc:
                raise RetryLater("forbidden", str(exc)) from None
            except ApiUnavailable as exc:
                raise RetryLater("api-unavailable", str(exc)) from None
            except ApiRejected as exc:
                return Result(Outcome.REJECTED, "rejected", str(exc), ref=ref)

    async def _apply(self, event: StorageEvent, ref: SegmentRef) -> Result:
        namespace, name = ref.videojob.namespace, ref.segment_name
        path = segment_path(namespace, name)
        sized: StorageEvent | None = None  # an UnsizedEvent once storage was read
        for _attempt in range(self._conflict_retries + 1):
            segment = await self._kube.get(path)
            if segment is None:
                return await self._missing(event, ref)
            metadata = segment.get("metadata") or {}
            spec = segment.get("spec") or {}
            if spec.get("videoJobUid") != ref.videojob.uid:
                detail = f"segment belongs to uid {spec.get('videoJobUid')}"
                return Result(Outcome.IGNORED, "videojob-uid-mismatch", detail, ref=ref)
            if spec.get("outputUri") != event.uri:
                detail = f"segment output is {spec.get('outputUri')}"
                return Result(Outcome.IGNORED, "output-uri-mismatch", detail, ref=ref)
            if metadata.get("deletionTimestamp"):
                return Result(Outcome.IGNORED, "segment-deleting", ref=ref)
            current = _recorded(segment)
            incoming = (sized or event).to_completion(recorded_at=self._clock())
            stale = _not_newer(current, incoming, ref)
            if stale is None and isinstance(event, UnsizedEvent) and sized is None:
                # Newer than the record by its generation: worth reading its size.
                found = await self._read_size(event, ref)
                if isinstance(found, Result):
                    return found
                sized = found
                incoming = sized.to_completion(recorded_at=self._clock())
                stale = _not_newer(current, incoming, ref)
            if stale is not None:
                return stale
            patch = completion_patch(incoming, str(metadata.get("resourceVersion", "")))
            try:
                await self._kube.merge_patch(path + "/status", patch)
            except ApiConflict:
                await asyncio.sleep(random.uniform(0, 0.05))
                continue  # re-read and decide again
            except ApiNotFound:
                return Result(Outcome.IGNORED, "segment-not-found", ref=ref)
            return Result(Outcome.APPLIED, ref=ref, completion=incoming)
        raise RetryLater("conflicts", f"{self._conflict_retries + 1} conflicting writes")

    async def _read_size(self, event: UnsizedEvent, ref: SegmentRef) -> StorageEvent | Result:
        """The event with the size, ETag and creation time of its generation, read from
        storage; or why it cannot be completed from this notification."""
        generation = event.generation
        if generation is None or self._object_stat is None:
            return self._size_unknown(event, ref, "the watcher has no storage reader")
        if not self._told_unsized:
            self._told_unsized = True
            log.info(
                "notifications without payload (payloadFormat NONE): reading each segment "
                "output's size from storage; a notification with --payload-format=json "
                "saves the read",
                extra={"uri": event.uri},
            )
        try:
            facts = await self._object_stat.stat(event.bucket, event.key, generation)
        except StatDenied as exc:
            return self._size_unknown(event, ref, str(exc))
        except StatUnavailable as exc:
            raise RetryLater("stat-unavailable", str(exc)) from None
        if facts is None:
            detail = f"generation {generation} no longer exists"
            return Result(Outcome.IGNORED, "object-gone", detail, ref=ref)
        fields = {name: getattr(event, name) for name in StorageEvent.model_fields}
        fields.update(size=facts.size, etag=facts.etag)
        fields["event_time"] = facts.created or event.event_time
        return StorageEvent.model_validate(fields)

    def _size_unknown(self, event: StorageEvent, ref: SegmentRef, why: str) -> Result:
        if not self._warned_size_unknown:
            self._warned_size_unknown = True
            log.error(
                "cannot complete segments from Cloud Storage notifications without payload "
                "(payloadFormat NONE): the object's size cannot be read. Grant the watcher "
                "storage.objects.get on the bucket, or recreate the notification with "
                "--payload-format=json. Until then these segments complete through the "
                "operator's own output check (timeouts.completionGraceSeconds). Logged once.",
                extra={"uri": event.uri, "error": why},
            )
        return Result(Outcome.IGNORED, "size-unknown", why, ref=ref)

    async def _missing(self, event: StorageEvent, ref: SegmentRef) -> Result:
        """No Segment: stale unless its VideoJob incarnation is alive and the event is young,
        in which case the Segment may not have been created yet."""
        try:
            videojob = await self._kube.get(
                videojob_path(ref.videojob.namespace, ref.videojob.name)
            )
        except (ApiRejected, ApiForbidden):
            videojob = None
        metadata = (videojob or {}).get("metadata") or {}
        alive = metadata.get("uid") == ref.videojob.uid and not metadata.get("deletionTimestamp")
        age = (self._clock() - event.event_time).total_seconds()
        if alive and age < self._pending_grace:
            raise RetryLater("segment-pending", f"VideoJob exists, event {age:.1f}s old")
        return Result(Outcome.IGNORED, "segment-not-found", ref=ref)


@dataclass
class DeliveryReport:
    results: list[Result] = field(default_factory=list)

    def count(self, outcome: Outcome) -> int:
        return sum(r.outcome is outcome for r in self.results)

    def summary(self, ignored_records: int = 0) -> dict[str, int]:
        return {
            "applied": self.count(Outcome.APPLIED),
            "duplicates": self.count(Outcome.DUPLICATE),
            "ignored": self.count(Outcome.IGNORED) + ignored_records,
            "rejected": self.count(Outcome.REJECTED),
        }


class Delivery:
    """Applies the events of a notification with bounded concurrency and retries."""

    def __init__(
        self,
        applier: Applier,
        metrics: WatcherMetrics,
        *,
        max_concurrency: int,
        initial_backoff: float = 0.2,
        max_backoff: float = 10.0,
    ) -> None:
        self._applier = applier
        self._metrics = metrics
        self._slots = asyncio.Semaphore(max_concurrency)
        self._initial_backoff = initial_backoff
        self._max_backoff = max_backoff
        self._inflight = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self.stopping = asyncio.Event()
        """Set on shutdown: retries stop early and the event is left for redelivery."""

    @property
    def inflight(self) -> int:
        return self._inflight

    async def wait_idle(self, grace: float) -> bool:
        """Wait until no event is being applied; False on timeout."""
        try:
            await asyncio.wait_for(self._idle.wait(), grace)
        except TimeoutError:
            return False
        return True

    async def deliver(
        self, notification: Notification, source: str, *, budget: float, replay: bool = False
    ) -> DeliveryReport:
        """Apply every event; RetryLater (after the others were tried) if any must be
        delivered again. budget: seconds to keep retrying an unreachable API server.
        replay: a spooled event tried again (not counted as received twice)."""
        if not replay:
            self._count_records(notification, source)
        report = DeliveryReport()
        pending: RetryLater | None = None
        for event in notification.events:
            try:
                report.results.append(await self._deliver_one(event, source, budget))
            except RetryLater as exc:
                pending = exc
        if pending is not None:
            raise pending
        return report

    def _count_records(self, notification: Notification, source: str) -> None:
        self._metrics.received.labels(source).inc(notification.records)
        for skipped in notification.ignored:
            self._metrics.ignored.labels(source, skipped.reason).inc()
            if skipped.notice:
                log.warning(
                    skipped.notice,
                    extra={"source": source, "reason": skipped.reason, **dict(skipped.context)},
                )
            else:
                log.debug(
                    "record ignored",
                    extra={"source": source, "reason": skipped.reason, "detail": skipped.detail},
                )
        for bad in notification.malformed:
            self._metrics.errors.labels(source, "malformed-record").inc()
            log.warning(
                "unreadable record skipped; the other records of its message are applied",
                extra={"source": source, "error": bad.error},
            )

    async def _deliver_one(self, event: StorageEvent, source: str, budget: float) -> Result:
        deadline = time.monotonic() + budget
        backoff = self._initial_backoff
        self._inflight += 1
        self._idle.clear()
        self._metrics.inflight.inc()
        try:
            while True:
                try:
                    async with self._slots:
                        result = await self._applier.apply(event)
                except RetryLater as exc:
                    self._metrics.errors.labels(source, exc.reason).inc()
                    delay = backoff * random.uniform(0.8, 1.2)
                    if self.stopping.is_set() or time.monotonic() + delay > deadline:
                        self._metrics.errors.labels(source, "released-for-redelivery").inc()
                        _log_event(
                            logging.WARNING,
                            "event left for redelivery",
                            event,
                            source,
                            self._applier.segment_of(event),
                            reason=exc.reason,
                            detail=exc.detail,
                        )
                        raise
                    log.debug(
                        "retrying",
                        extra={
                            "source": source,
                            "uri": event.uri,
                            "reason": exc.reason,
                            "detail": exc.detail,
                        },
                    )
                    await asyncio.sleep(delay)
                    backoff = min(backoff * 2, self._max_backoff)
                    continue
                self._record(result, event, source)
                return result
        finally:
            self._inflight -= 1
            self._metrics.inflight.dec()
            if self._inflight == 0:
                self._idle.set()

    def _record(self, result: Result, event: StorageEvent, source: str) -> None:
        m = self._metrics
        if result.outcome is Outcome.APPLIED:
            m.applied.labels(source).inc()
            latency = (datetime.now(UTC) - event.event_time).total_seconds()
            m.latency.labels(source).observe(max(latency, 0.0))
            _log_event(
                logging.INFO,
                "completion recorded",
                event,
                source,
                result.ref,
                latency_s=round(latency, 4),
            )
        elif result.outcome is Outcome.DUPLICATE:
            m.duplicates.labels(source).inc()
            _log_event(logging.INFO, "duplicate event", event, source, result.ref)
        elif result.outcome is Outcome.REJECTED:
            m.errors.labels(source, result.reason).inc()
            _log_event(
                logging.ERROR,
                "API server refused the event; dropped",
                event,
                source,
                result.ref,
                reason=result.reason,
                detail=result.detail,
            )
        else:
            m.ignored.labels(source, result.reason).inc()
            level = logging.DEBUG if result.ref is None else logging.INFO
            _log_event(
                level,
                "event ignored",
                event,
                source,
                result.ref,
                reason=result.reason,
                detail=result.detail,
            )


def _log_event(
    level: int,
    message: str,
    event: StorageEvent,
    source: str,
    ref: SegmentRef | None,
    **fields: Any,
) -> None:
    if not log.isEnabledFor(level):
        return
    extra: dict[str, Any] = {"source": source, "uri": event.uri}
    if ref is not None:
        extra.update(
            namespace=ref.videojob.namespace,
            videojob=ref.videojob.name,
            uid=ref.videojob.uid,
            index=ref.index,
        )
    if event.generation is not None:
        extra["generation"] = event.generation
    if event.sequencer is not None:
        extra["sequencer"] = event.sequencer
    extra.update({k: v for k, v in fields.items() if v not in (None, "")})
    log.log(level, message, extra=extra)
