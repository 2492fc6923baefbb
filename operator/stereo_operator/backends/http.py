"""The `http` backend: each attempt is one `POST /invocations` to an inference service.

The request can run for minutes, so `submit` only hands it to a bounded thread pool owned by
a process-wide `HttpDispatcher` and returns: neither kopf's event loop nor the reconcile
round waits for it. The dispatcher remembers every attempt it was given (one request per
(segment, attempt), however often it is submitted) and its outcome; each reconcile round
builds an `HttpBackend` that observes a copy of that memory, so observing stays pure.

A 200 answer does not complete the segment: it makes the attempt Succeeded, and completion
comes, as for Jobs, from the storage event or the reconcile round's own output check.

The Segment's status records the attempt (`attempts`, `jobName`, phase Running) through the
usual launch patch. A Running segment whose current attempt this process never sent was in
flight when an earlier operator process stopped: that request is lost, so the attempt counts
as failed with reason `OperatorRestarted` and the segment is retried with the usual backoff.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from stereo_operator import jobs
from stereo_operator.backends.base import AttemptState, SegmentObservation
from stereo_operator.backends.invocation import invocation_bytes
from stereo_operator.backends.tracked import (
    CANCELLED,
    AttemptTracker,
    TrackedAttempt,
    TrackedBackend,
)
from stereo_operator.config import OperatorConfig
from stereo_operator.views import SegmentView
from stereo_types.layout import VideoJobRef
from stereo_types.segment import SegmentPhase
from stereo_types.videojob import VideoJobSpec

if TYPE_CHECKING:
    from stereo_operator.kube import Kube

log = logging.getLogger(__name__)

# Failure reasons, as a Segment's status shows them.
OPERATOR_RESTARTED = "OperatorRestarted"
BAD_REQUEST = "BadRequest"
INPUT_NOT_FOUND = "InputNotFound"
UNCONVERTIBLE_INPUT = "UnconvertibleInput"
SERVICE_UNAVAILABLE = "ServiceUnavailable"
INFERENCE_ERROR = "InferenceError"
REQUEST_TIMEOUT = "RequestTimeout"

# The service's answers that retrying cannot change: the segment fails for good.
_BAD_INPUT = {400: BAD_REQUEST, 404: INPUT_NOT_FOUND, 413: BAD_REQUEST, 422: UNCONVERTIBLE_INPUT}
# Answers worth asking again (after a backoff) within the same attempt.
_RETRYABLE = {408, 429, 502, 503, 504}

MAX_POOL = 64
_MAX_DETAIL = 1024


def invocations_url(base: str) -> str:
    return base.rstrip("/") + "/invocations"


@dataclass(frozen=True, slots=True)
class HttpRequest:
    url: str
    body: bytes
    timeout_seconds: float
    retries: int


@dataclass(slots=True)
class _Record(TrackedAttempt):
    cancelled: threading.Event = field(default_factory=threading.Event)
    """Set when the operator stops waiting: a worker drops the request or its retries."""


def _detail(raw: bytes) -> str:
    text = raw.decode("utf-8", errors="replace").strip()
    try:
        document = json.loads(text)
    except ValueError:
        return text[:_MAX_DETAIL]
    if isinstance(document, dict):
        for key in ("error", "message", "detail"):
            value = document.get(key)
            if isinstance(value, str) and value:
                return value[:_MAX_DETAIL]
    return text[:_MAX_DETAIL]


class HttpDispatcher(AttemptTracker[_Record]):
    """The process's in-flight requests and their outcomes, and the threads that send them.

    Cancelling stops waiting for an attempt. A request already on the wire cannot be called
    back: its answer is ignored (the service may still write the same canonical output).
    """

    cancel_message = "the operator cancelled the request"

    def __init__(
        self,
        max_workers: int = 16,
        *,
        backoff_seconds: float = 1.0,
        max_backoff_seconds: float = 30.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        super().__init__(clock)
        self.max_workers = max(1, min(max_workers, MAX_POOL))
        self.backoff_seconds = backoff_seconds
        self.max_backoff_seconds = max_backoff_seconds
        self.started_at = clock().replace(microsecond=0)
        # Daemon workers (not a ThreadPoolExecutor): a request waiting minutes for its answer
        # must not hold up the operator's exit, and a restarted operator handles it anyway.
        self._queue: queue.SimpleQueue[tuple[_Record, HttpRequest] | None] = queue.SimpleQueue()
        self._workers: list[threading.Thread] = []
        self._closed = False

    def state(self, segment_uid: str, attempt: int) -> AttemptState | None:
        with self._lock:
            record = self._records.get((segment_uid, attempt))
            return record.state if record is not None else None

    # -- submitting and cancelling --------------------------------------------------------

    def submit(
        self, videojob_uid: str, segment_uid: str, index: int, attempt: int, request: HttpRequest
    ) -> bool:
        """Send the request in the background; False when this attempt was sent before."""
        key = (segment_uid, attempt)
        with self._lock:
            if key in self._records:
                return False
            record = _Record(videojob_uid, segment_uid, index, attempt, AttemptState.running())
            self._records[key] = record
            self._queue.put((record, request))
            busy = sum(1 for r in self._records.values() if r.active)
            self._workers = [w for w in self._workers if w.is_alive()]
            if len(self._workers) < min(busy, self.max_workers) and not self._closed:
                worker = threading.Thread(
                    target=self._work, name=f"http-backend-{len(self._workers)}", daemon=True
                )
                self._workers.append(worker)
                worker.start()
        return True

    def _on_cancel(self, record: _Record) -> None:
        record.cancelled.set()

    def shutdown(self) -> None:
        """Stop the workers (requests on the wire finish unobserved)."""
        with self._lock:
            self._closed = True
            for record in self._records.values():
                record.cancelled.set()
            workers = len(self._workers)
        for _ in range(workers):
            self._queue.put(None)

    def wait_idle(self, timeout: float) -> bool:
        """Tests: wait until no request is in flight."""
        deadline = datetime.now(UTC) + timedelta(seconds=timeout)
        while datetime.now(UTC) < deadline:
            with self._lock:
                if not any(r.active for r in self._records.values()):
                    return True
            threading.Event().wait(0.02)
        return False

    # -- the worker ------------------------------------------------------------------------

    def _finish(self, record: _Record, state: AttemptState) -> None:
        with self._lock:
            if record.active and not record.cancelled.is_set():
                record.state = state

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            record, request = item
            if not record.cancelled.is_set():
                self._run(record, request)

    def _run(self, record: _Record, request: HttpRequest) -> None:
        try:
            self._finish(record, self._send(record, request))
        except Exception as exc:  # a bug must not leave the attempt running forever
            log.exception("http backend: request of attempt %d failed", record.attempt)
            self._finish(
                record,
                AttemptState.failed(
                    INFERENCE_ERROR, f"{type(exc).__name__}: {exc}", finished_at=self.clock()
                ),
            )

    def _send(self, record: _Record, request: HttpRequest) -> AttemptState:
        where = f"{request.url} (attempt {record.attempt} of segment {record.index})"
        tries = request.retries + 1
        last = ""
        for number in range(1, tries + 1):
            if record.cancelled.is_set():
                return AttemptState.failed(CANCELLED, "cancelled", finished_at=self.clock())
            outcome = self._post(request)
            status, detail = outcome
            if status == 200:
                return AttemptState.succeeded(self.clock())
            if status in _BAD_INPUT:
                return AttemptState.failed(
                    _BAD_INPUT[status],
                    f"{where} answered {status}: {detail}",
                    bad_input=True,
                    finished_at=self.clock(),
                )
            if status == -1:  # the request timed out: the service is working on it or stuck
                return AttemptState.failed(
                    REQUEST_TIMEOUT,
                    f"{where}: no answer within {request.timeout_seconds:g}s",
                    finished_at=self.clock(),
                )
            if status != 0 and status not in _RETRYABLE:
                return AttemptState.failed(
                    INFERENCE_ERROR,
                    f"{where} answered {status}: {detail}",
                    finished_at=self.clock(),
                )
            last = f"answered {status}: {detail}" if status else f"unreachable: {detail}"
            if number < tries:
                delay = min(self.backoff_seconds * 2 ** (number - 1), self.max_backoff_seconds)
                log.info("http backend: %s %s; retrying in %.1fs", where, last, delay)
                if record.cancelled.wait(delay):
                    return AttemptState.failed(CANCELLED, "cancelled", finished_at=self.clock())
        return AttemptState.failed(
            SERVICE_UNAVAILABLE,
            f"{where} {last} (after {tries} tries)",
            finished_at=self.clock(),
        )

    @staticmethod
    def _post(request: HttpRequest) -> tuple[int, str]:
        """(HTTP status, detail); 0 when the service cannot be reached, -1 on a timeout."""
        http_request = urllib.request.Request(
            request.url,
            data=request.body,
            method="POST",
            headers={"Content-Type": "application/json", "Accept": "application/json"},
        )
        try:
            with urllib.request.urlopen(http_request, timeout=request.timeout_seconds) as answer:
                answer.read()
                return int(answer.status), ""
        except urllib.error.HTTPError as err:
            try:
                detail = _detail(err.read())
            except OSError:
                detail = str(err.reason)
            return int(err.code), detail
        except TimeoutError:
            return -1, "timed out"
        except urllib.error.URLError as err:
            if isinstance(err.reason, TimeoutError):
                return -1, "timed out"
            return 0, str(err.reason)
        except (ConnectionError, OSError) as err:
            return 0, f"{type(err).__name__}: {err}"


_default: HttpDispatcher | None = None
_default_lock = threading.Lock()


def default_dispatcher(config: OperatorConfig) -> HttpDispatcher:
    """The process-wide dispatcher (its pool is sized by the cluster-wide cap, bounded)."""
    global _default
    with _default_lock:
        if _default is None:
            _default = HttpDispatcher(max_workers=config.max_inflight)
        return _default


class HttpBackend(TrackedBackend):
    name = "http"

    def __init__(
        self,
        ref: VideoJobRef,
        spec: VideoJobSpec,
        config: OperatorConfig,
        kube: Kube | None = None,
        dispatcher: HttpDispatcher | None = None,
    ) -> None:
        if spec.backend.http is None:
            raise ValueError("backend.http is required when backend.type is 'http'")
        self.settings = spec.backend.http
        self.dispatcher = dispatcher or default_dispatcher(config)
        super().__init__(ref, spec, config, kube, self.dispatcher)

    def observe(self, segment: SegmentView, attempt: int) -> SegmentObservation:
        mine = self.records(segment)
        current = AttemptState.missing()
        if attempt > 0:
            record = mine.get(attempt)
            if record is not None:
                current = record.state
            elif segment.phase is SegmentPhase.RUNNING and segment.completion is None:
                current = AttemptState.failed(
                    OPERATOR_RESTARTED,
                    f"the operator restarted while attempt {attempt}'s request to "
                    f"{self.settings.url} was in flight; its answer is lost",
                    finished_at=self.dispatcher.started_at,
                )
        return self.observation(current, {a: r.state for a, r in mine.items()})

    def request(self, segment: SegmentView) -> HttpRequest:
        return HttpRequest(
            url=invocations_url(self.settings.url),
            body=invocation_bytes(segment.spec),
            timeout_seconds=float(self.settings.timeout_seconds),
            retries=self.settings.retries,
        )

    def submit(self, segment: SegmentView, attempt: int) -> str:
        """Returns at once: the request runs on the dispatcher's pool."""
        self.dispatcher.submit(
            self.ref.uid, segment.uid, segment.index, attempt, self.request(segment)
        )
        return jobs.inference_job_name(self.ref, segment.index, attempt)
