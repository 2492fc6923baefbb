"""The `managed` backend: SageMaker asynchronous inference, one invocation per attempt.

`submit` writes the request document next to the segment in the workspace
(`segments/NNNNN/invocation-aN.json`), calls `invoke_endpoint_async` with a deterministic
`InferenceId` per (segment, attempt), and writes a receipt next to the document
(`invocation-aN.receipt.json`: inference id, the output and failure locations SageMaker
answered, the submit time). A restarted operator finds the receipt when the reconcile round
asks it to submit the attempt again, and adopts the invocation instead of paying for a
second one; the attempt's timeout still counts from the first submit.

Outcomes come from a poller thread of the process-wide `ManagedTracker`:

* a failure notification on the `failureTopic` queue (SNS to SQS, raw or wrapped), matched
  by inference id or input location, fails the attempt;
* the error object SageMaker writes at the failure location fails the attempt;
* the response object at the output location makes it Succeeded (completion itself still
  comes from the storage event or the reconcile round's output check);
* with none of these, `timeouts.segmentSeconds` after the submit the attempt fails with
  reason `Timeout`, so a lost notification never leaves a segment hanging.

Observing reads a copy of the tracker's memory taken when the backend is built: pure.
"""

from __future__ import annotations

import json
import logging
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stereo_operator import jobs
from stereo_operator.backends.base import AttemptState, SegmentObservation
from stereo_operator.backends.invocation import attempt_key, invocation_bytes
from stereo_operator.backends.tracked import (
    AttemptRecord,
    AttemptTracker,
    TrackedAttempt,
    TrackedBackend,
)
from stereo_operator.config import OperatorConfig
from stereo_operator.storage import Workspace
from stereo_operator.views import SegmentView, parse_time
from stereo_storage import StorageError
from stereo_types.backend import ManagedBackend
from stereo_types.layout import VideoJobRef
from stereo_types.videojob import VideoJobSpec

if TYPE_CHECKING:
    from stereo_operator.kube import Kube

log = logging.getLogger(__name__)

# Failure reasons, as a Segment's status shows them.
INVOKE_FAILED = "InvokeFailed"
INFERENCE_FAILED = "InferenceFailed"
TIMEOUT = "Timeout"

POLL_SECONDS = 5.0
_MAX_DETAIL = 1024
_RECEIVE_BATCHES = 10

ClientFactory = Callable[[str, str], Any]
"""(service, region) -> a boto3 client."""


def boto3_client(service: str, region: str) -> Any:
    import boto3  # only the managed backend needs it

    return boto3.client(service, region_name=region)


def request_uri(segment: SegmentView, attempt: int) -> str:
    """Where the attempt's request document lives: next to the segment's output."""
    folder = segment.spec.output_uri.rsplit("/", 1)[0]
    return f"{folder}/invocation-a{attempt}.json"


def receipt_uri(segment: SegmentView, attempt: int) -> str:
    return request_uri(segment, attempt).removesuffix(".json") + ".receipt.json"


@dataclass(frozen=True, slots=True)
class Receipt:
    inference_id: str
    input_location: str
    output_location: str | None
    failure_location: str | None
    submitted_at: datetime

    def to_json(self) -> bytes:
        return json.dumps(
            {
                "inferenceId": self.inference_id,
                "inputLocation": self.input_location,
                "outputLocation": self.output_location,
                "failureLocation": self.failure_location,
                "submittedAt": self.submitted_at.astimezone(UTC).isoformat(),
            },
            sort_keys=True,
        ).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> Receipt:
        data = json.loads(raw)
        submitted = parse_time(data.get("submittedAt"))
        if submitted is None:
            raise ValueError("the receipt has no submittedAt")
        return cls(
            inference_id=str(data["inferenceId"]),
            input_location=str(data["inputLocation"]),
            output_location=data.get("outputLocation"),
            failure_location=data.get("failureLocation"),
            submitted_at=submitted,
        )


@dataclass(slots=True)
class _Record(TrackedAttempt):
    receipt: Receipt | None = None
    failure_queue: str | None = None
    region: str = ""
    timeout: timedelta | None = None

    @property
    def submitted_at(self) -> datetime | None:
        return self.receipt.submitted_at if self.receipt is not None else None


def timed_out(submitted_at: datetime, limit: timedelta) -> AttemptState:
    return AttemptState.failed(
        TIMEOUT,
        f"no output and no failure notice within {int(limit.total_seconds())}s "
        "(timeouts.segmentSeconds) of invoking the endpoint",
        finished_at=submitted_at + limit,
    )


def failure_notification(body: str) -> dict[str, Any] | None:
    """SageMaker's async-inference notification inside an SQS message (raw, or as an SNS
    envelope); None for anything else."""
    try:
        document = json.loads(body)
    except ValueError:
        return None
    if not isinstance(document, dict):
        return None
    if document.get("Type") == "Notification" and isinstance(document.get("Message"), str):
        return failure_notification(document["Message"])
    if "inferenceId" in document or "requestParameters" in document:
        return document
    return None


class ManagedTracker(AttemptTracker[_Record]):
    """The process's async invocations, their outcomes and the poller that learns them.

    SageMaker cannot cancel a queued invocation: cancelling only stops waiting for it."""

    def __init__(
        self,
        workspace: Workspace,
        clients: ClientFactory = boto3_client,
        *,
        poll_seconds: float = POLL_SECONDS,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        super().__init__(clock)
        self.workspace = workspace
        self.clients = clients
        self.poll_seconds = poll_seconds
        self._queue_urls: dict[tuple[str, str], str | None] = {}
        self._poller: threading.Thread | None = None
        self._stop = threading.Event()

    # -- submitting -----------------------------------------------------------------------

    def submit(
        self,
        videojob_uid: str,
        segment: SegmentView,
        attempt: int,
        settings: ManagedBackend,
        timeout: timedelta | None = None,
    ) -> Receipt | None:
        key = (segment.uid, attempt)
        with self._lock:
            existing = self._records.get(key)
            if existing is not None:
                return existing.receipt
            record = _Record(
                videojob_uid,
                segment.uid,
                segment.index,
                attempt,
                AttemptState.running(),
                failure_queue=settings.failure_topic,
                region=settings.region,
                timeout=timeout,
            )
            self._records[key] = record  # one invocation per attempt, even when raced
        try:
            receipt = self._read_receipt(receipt_uri(segment, attempt))
            if receipt is None:
                receipt = self._invoke(segment, attempt, settings)
            else:
                log.info("managed backend: adopted %s", receipt.inference_id)
        except Exception as exc:
            log.warning("managed backend: cannot submit attempt %d: %s", attempt, exc)
            with self._lock:
                record.state = AttemptState.failed(
                    INVOKE_FAILED,
                    f"cannot invoke endpoint {settings.endpoint_name}: {type(exc).__name__}: {exc}"[
                        :_MAX_DETAIL
                    ],
                    finished_at=self.clock(),
                )
            return None
        with self._lock:
            record.receipt = receipt
        self._ensure_poller()
        return receipt

    def _put(self, uri: str, data: bytes) -> None:
        with tempfile.TemporaryDirectory(prefix="stereo-managed-") as tmp:
            local = Path(tmp) / "document.json"
            local.write_bytes(data)
            self.workspace.store(uri).upload_file(local, uri)

    def _get(self, uri: str) -> bytes | None:
        store = self.workspace.store(uri)
        if store.stat(uri) is None:
            return None
        with tempfile.TemporaryDirectory(prefix="stereo-managed-") as tmp:
            local = Path(tmp) / "object"
            store.download_file(uri, local)
            return local.read_bytes()

    def _read_receipt(self, uri: str) -> Receipt | None:
        raw = self._get(uri)
        if raw is None:
            return None
        try:
            return Receipt.from_json(raw)
        except (ValueError, KeyError) as exc:
            log.warning("managed backend: ignoring the unreadable receipt %s: %s", uri, exc)
            return None

    def _invoke(self, segment: SegmentView, attempt: int, settings: ManagedBackend) -> Receipt:
        document = request_uri(segment, attempt)
        self._put(document, invocation_bytes(segment.spec))
        inference_id = attempt_key(segment.uid, attempt)
        runtime = self.clients("sagemaker-runtime", settings.region)
        submitted_at = self.clock().replace(microsecond=0)
        answer = runtime.invoke_endpoint_async(
            EndpointName=settings.endpoint_name,
            InputLocation=document,
            ContentType="application/json",
            Accept="application/json",
            InferenceId=inference_id,
        )
        receipt = Receipt(
            inference_id=inference_id,
            input_location=document,
            output_location=answer.get("OutputLocation"),
            failure_location=answer.get("FailureLocation"),
            submitted_at=submitted_at,
        )
        try:
            self._put(receipt_uri(segment, attempt), receipt.to_json())
        except StorageError as exc:  # the invocation runs; only a restart would miss it
            log.warning("managed backend: cannot write the receipt of %s: %s", inference_id, exc)
        log.info("managed backend: invoked %s with %s", settings.endpoint_name, document)
        return receipt

    # -- learning outcomes ----------------------------------------------------------------

    def _running(self) -> list[_Record]:
        with self._lock:
            return [r for r in self._records.values() if r.active and r.receipt is not None]

    def _settle(self, record: _Record, state: AttemptState) -> None:
        with self._lock:
            if record.active:
                record.state = state

    def poll_once(self) -> None:
        """Look at every running invocation's failure and output objects, then drain the
        failure queues. Storage or API errors leave the attempt running (the timeout holds)."""
        now = self.clock()
        running = []
        for record in self._running():
            receipt = record.receipt
            assert receipt is not None
            if record.timeout is not None and now - receipt.submitted_at >= record.timeout:
                # The backend reports the timeout; the poller only stops looking.
                self._settle(record, timed_out(receipt.submitted_at, record.timeout))
                continue
            running.append(record)
            try:
                self._check_objects(record, receipt)
            except Exception as exc:
                log.warning("managed backend: cannot check %s: %s", receipt.inference_id, exc)
        queues = {(r.region, r.failure_queue) for r in running if r.failure_queue}
        for region, queue in sorted(queues):
            try:
                self._drain_queue(region, queue)
            except Exception as exc:
                log.warning("managed backend: cannot read the failure queue %s: %s", queue, exc)

    def _check_objects(self, record: _Record, receipt: Receipt) -> None:
        if receipt.failure_location:
            raw = self._get(receipt.failure_location)
            if raw is not None:
                detail = raw.decode("utf-8", errors="replace").strip()[:_MAX_DETAIL]
                self._settle(
                    record,
                    AttemptState.failed(
                        INFERENCE_FAILED,
                        f"the endpoint failed {receipt.inference_id}: {detail}",
                        finished_at=self.clock(),
                    ),
                )
                return
        if receipt.output_location:
            found = self.workspace.stat(receipt.output_location)
            if found is not None:
                self._settle(record, AttemptState.succeeded(found.updated or self.clock()))

    def queue_url(self, region: str, queue: str) -> str | None:
        """An SQS queue URL from a URL, an SQS ARN or a name; None for an SNS topic ARN
        (nothing to poll: the failure object and the timeout still catch failures)."""
        key = (region, queue)
        if key in self._queue_urls:
            return self._queue_urls[key]
        url: str | None
        if queue.startswith(("https://", "http://")):
            url = queue
        elif queue.startswith("arn:") and queue.split(":")[2:3] == ["sqs"]:
            parts = queue.split(":")
            sqs = self.clients("sqs", parts[3] or region)
            url = sqs.get_queue_url(QueueName=parts[5], QueueOwnerAWSAccountId=parts[4])["QueueUrl"]
        elif queue.startswith("arn:"):
            log.warning(
                "managed backend: failureTopic %s is not an SQS queue; subscribe a queue to it "
                "and name that queue instead",
                queue,
            )
            url = None
        else:
            url = self.clients("sqs", region).get_queue_url(QueueName=queue)["QueueUrl"]
        self._queue_urls[key] = url
        return url

    def _drain_queue(self, region: str, queue: str) -> None:
        url = self.queue_url(region, queue)
        if url is None:
            return
        sqs = self.clients("sqs", region)
        for _ in range(_RECEIVE_BATCHES):
            answer = sqs.receive_message(
                QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0, VisibilityTimeout=30
            )
            messages = answer.get("Messages") or []
            if not messages:
                return
            for message in messages:
                if self._apply_notification(message.get("Body") or ""):
                    sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])

    def _apply_notification(self, body: str) -> bool:
        """Fail the attempt the notification names; True when it named one of ours (the
        message can go). Others' messages are left to their owners."""
        note = failure_notification(body)
        if note is None:
            return False
        inference_id = note.get("inferenceId")
        params = note.get("requestParameters") or {}
        location = params.get("inputLocation") if isinstance(params, dict) else None
        status = str(note.get("invocationStatus") or "Failed")
        with self._lock:
            for record in self._records.values():
                receipt = record.receipt
                if receipt is None:
                    continue
                if inference_id != receipt.inference_id and location != receipt.input_location:
                    continue
                if status.lower() != "failed":
                    return True  # a success notification: the output object says the rest
                if record.active:
                    reason = note.get("failureReason") or "the endpoint reported a failure"
                    record.state = AttemptState.failed(
                        INFERENCE_FAILED,
                        f"{receipt.inference_id}: {reason}"[:_MAX_DETAIL],
                        finished_at=parse_time(note.get("eventTime")) or self.clock(),
                    )
                return True
        return False

    def _ensure_poller(self) -> None:
        with self._lock:
            if self._poller is not None and self._poller.is_alive():
                return
            self._poller = threading.Thread(
                target=self._poll_loop, name="managed-backend-poller", daemon=True
            )
            self._poller.start()

    def _poll_loop(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            try:
                self.poll_once()
            except Exception:
                log.exception("managed backend: polling failed")
            if not self._running():
                with self._lock:
                    if not any(r.active for r in self._records.values()):
                        self._poller = None
                        return

    def stop(self) -> None:
        self._stop.set()


_default: ManagedTracker | None = None
_default_lock = threading.Lock()


def default_tracker(config: OperatorConfig) -> ManagedTracker:
    global _default
    with _default_lock:
        if _default is None:
            _default = ManagedTracker(Workspace(config.storage))
        return _default


class SageMakerAsyncBackend(TrackedBackend):
    name = "managed"

    def __init__(
        self,
        ref: VideoJobRef,
        spec: VideoJobSpec,
        config: OperatorConfig,
        kube: Kube | None = None,
        tracker: ManagedTracker | None = None,
        now: datetime | None = None,
    ) -> None:
        if spec.backend.managed is None:
            raise ValueError("backend.managed is required when backend.type is 'managed'")
        self.settings = spec.backend.managed
        self.tracker = tracker or default_tracker(config)
        self.now = now or datetime.now(UTC)
        super().__init__(ref, spec, config, kube, self.tracker)

    def _state(self, record: AttemptRecord) -> AttemptState:
        if not record.active or record.submitted_at is None:
            return record.state
        limit = timedelta(seconds=self.spec.timeouts.segment_seconds)
        if self.now - record.submitted_at < limit:
            return record.state
        return timed_out(record.submitted_at, limit)

    def observe(self, segment: SegmentView, attempt: int) -> SegmentObservation:
        mine = {a: self._state(r) for a, r in self.records(segment).items()}
        current = mine.get(attempt) if attempt > 0 else None
        return self.observation(current or AttemptState.missing(), mine)

    def submit(self, segment: SegmentView, attempt: int) -> str:
        """Writes the request document and invokes the endpoint (or adopts an invocation an
        earlier operator process made); failures are recorded as the attempt's outcome."""
        timeout = timedelta(seconds=self.spec.timeouts.segment_seconds)
        self.tracker.submit(self.ref.uid, segment, attempt, self.settings, timeout)
        return jobs.inference_job_name(self.ref, segment.index, attempt)
