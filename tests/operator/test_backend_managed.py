"""The `managed` backend with real boto3 against moto in server mode.

moto fakes `invoke_endpoint_async`: it answers an output and a failure location in a bucket of
its own and writes either the response or (when told to) the error object there. It runs no
model and sends no SNS notification, so the failure notice on the queue is sent by the test in
the shape SageMaker documents (raw and wrapped in an SNS envelope).
"""

from __future__ import annotations

import dataclasses
import json
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from stereo_operator.backends import AttemptPhase, backend_for
from stereo_operator.backends.invocation import attempt_key, invocation_document
from stereo_operator.backends.managed import (
    INFERENCE_FAILED,
    INVOKE_FAILED,
    TIMEOUT,
    ManagedTracker,
    Receipt,
    SageMakerAsyncBackend,
    failure_notification,
    receipt_uri,
    request_uri,
)
from stereo_operator.reconcile import Fetched, reconcile
from stereo_operator.storage import Workspace
from stereo_operator.views import SegmentView
from stereo_storage import StorageConfig
from tests.operator.factories import CONFIG, REF, running, segment, snapshot, spec, status
from tests.servers import MotoServer

BUCKET = "stereo-managed"
ENDPOINT = "stereo-async"


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoServer]:
    with MotoServer() as server:
        yield server


@pytest.fixture
def aws(moto: MotoServer, monkeypatch: pytest.MonkeyPatch) -> MotoServer:
    moto.reset()
    for name, value in moto.env.items():
        monkeypatch.setenv(name, value)
    moto.client("s3").create_bucket(Bucket=BUCKET)
    return moto


class Calls:
    """Every InvokeEndpointAsync request boto3 sends, as its parameters."""

    def __init__(self, moto: MotoServer) -> None:
        self.moto = moto
        self.params: list[dict[str, Any]] = []

    def client(self, service: str, region: str) -> Any:
        made = self.moto.client(service)
        made.meta.events.register(
            "provide-client-params.sagemaker-runtime.InvokeEndpointAsync",
            lambda params, **_: self.params.append(dict(params)),
        )
        return made


def tracker(aws: MotoServer, calls: Calls | None = None) -> ManagedTracker:
    workspace = Workspace(StorageConfig(endpoint_url=aws.endpoint_url, path_style=True))
    return ManagedTracker(workspace, (calls or Calls(aws)).client, poll_seconds=3600)


def managed_spec(failure_topic: str | None = None, segment_seconds: int = 300) -> Any:
    managed: dict[str, Any] = {"endpointName": ENDPOINT, "region": "us-east-1"}
    if failure_topic:
        managed["failureTopic"] = failure_topic
    return spec(
        backend={"type": "managed", "engine": "builtin", "managed": managed},
        timeouts={"completionGraceSeconds": 5, "segmentSeconds": segment_seconds},
    )


def seg(vj_spec: Any, index: int = 0, attempts: int = 0) -> SegmentView:
    view = running(index, attempts) if attempts else segment(index, vj_spec=vj_spec)
    folder = f"s3://{BUCKET}/films/movie/{REF.uid}/segments/{index:05d}"
    new_spec = view.spec.model_copy(
        update={
            "input_uri": f"{folder}/input.mp4",
            "output_uri": f"{folder}/output.mp4",
            "backend": vj_spec.backend,
        }
    )
    return dataclasses.replace(view, spec=new_spec)


def backend(vj_spec: Any, t: ManagedTracker, now: datetime | None = None) -> SageMakerAsyncBackend:
    return SageMakerAsyncBackend(REF, vj_spec, CONFIG, None, t, now)


def read(aws: MotoServer, uri: str) -> bytes:
    bucket, key = uri.removeprefix("s3://").split("/", 1)
    body: bytes = aws.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
    return body


def async_results(aws: MotoServer, *results: dict[str, Any]) -> None:
    request = urllib.request.Request(
        f"{aws.endpoint_url}/moto-api/static/sagemaker/async-endpoint-results",
        data=json.dumps({"results": list(results)}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        answer.read()


def test_backend_for_builds_the_managed_backend() -> None:
    built = backend_for(REF, managed_spec(), CONFIG, [])
    assert isinstance(built, SageMakerAsyncBackend) and built.name == "managed"


def test_submit_writes_the_request_and_invokes_the_endpoint(aws: MotoServer) -> None:
    calls = Calls(aws)
    t = tracker(aws, calls)
    vj_spec = managed_spec()
    view = seg(vj_spec)
    backend(vj_spec, t).submit(view, 1)
    document = request_uri(view, 1)
    assert document == f"s3://{BUCKET}/films/movie/{REF.uid}/segments/00000/invocation-a1.json"
    assert json.loads(read(aws, document)) == invocation_document(view.spec)
    assert calls.params == [
        {
            "EndpointName": ENDPOINT,
            "InputLocation": document,
            "ContentType": "application/json",
            "Accept": "application/json",
            "InferenceId": attempt_key(view.uid, 1),
        }
    ]
    receipt = Receipt.from_json(read(aws, receipt_uri(view, 1)))
    assert receipt.inference_id == attempt_key(view.uid, 1) and receipt.output_location
    # Submitting the attempt again (a handler run twice) invokes nothing more.
    backend(vj_spec, t).submit(view, 1)
    assert len(calls.params) == 1
    obs = backend(vj_spec, t).observe(seg(vj_spec, attempts=1), 1)
    assert obs.current.phase is AttemptPhase.RUNNING and obs.active_attempts == {1}


def test_the_response_object_makes_the_attempt_succeeded(aws: MotoServer) -> None:
    t = tracker(aws)
    vj_spec = managed_spec()
    view = seg(vj_spec)
    backend(vj_spec, t).submit(view, 1)
    t.poll_once()
    obs = backend(vj_spec, t).observe(seg(vj_spec, attempts=1), 1)
    assert obs.current.phase is AttemptPhase.SUCCEEDED and not obs.active_attempts


def test_the_error_object_fails_the_attempt(aws: MotoServer) -> None:
    async_results(aws, {"is_failure": True, "data": "model crashed: CUDA out of memory"})
    t = tracker(aws)
    vj_spec = managed_spec()
    view = seg(vj_spec)
    backend(vj_spec, t).submit(view, 1)
    t.poll_once()
    running_view = seg(vj_spec, attempts=1)
    obs = backend(vj_spec, t).observe(running_view, 1)
    assert obs.current.phase is AttemptPhase.FAILED and not obs.current.bad_input
    assert obs.current.reason == INFERENCE_FAILED
    assert "CUDA out of memory" in (obs.current.message or "")
    [patch] = reconcile(
        running_snapshot(vj_spec, running_view, obs), Fetched(), CONFIG
    ).segment_patches
    assert patch.retry and patch.patch["lastFailureReason"] == INFERENCE_FAILED


@pytest.mark.parametrize("envelope", ["raw", "sns"])
def test_a_failure_notification_on_the_queue_fails_the_attempt(
    aws: MotoServer, envelope: str
) -> None:
    sqs = aws.client("sqs")
    queue_url = sqs.create_queue(QueueName=f"failures-{envelope}")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])
    queue_arn = arn["Attributes"]["QueueArn"]
    t = tracker(aws)
    # Named by ARN: the backend finds the queue's URL itself.
    vj_spec = managed_spec(failure_topic=queue_arn)
    view = seg(vj_spec)
    backend(vj_spec, t).submit(view, 1)
    receipt = Receipt.from_json(read(aws, receipt_uri(view, 1)))
    # The invocation is still queued at the endpoint: no response object yet.
    assert receipt.output_location
    bucket, key = receipt.output_location.removeprefix("s3://").split("/", 1)
    aws.client("s3").delete_object(Bucket=bucket, Key=key)
    t.poll_once()
    assert backend(vj_spec, t).observe(seg(vj_spec, attempts=1), 1).current.phase is (
        AttemptPhase.RUNNING
    )

    note = {
        "awsRegion": "us-east-1",
        "eventTime": "2030-01-01T12:00:00.000Z",
        "receivedTime": "2030-01-01T11:59:00.000Z",
        "invocationStatus": "Failed",
        "failureReason": "ClientError: Received server error (500) from model",
        "requestParameters": {
            "endpointName": ENDPOINT,
            "inputLocation": receipt.input_location,
        },
        "inferenceId": receipt.inference_id,
        "eventVersion": "1.0",
        "eventSource": "aws:sagemaker",
        "eventName": "InferenceResult",
    }
    body = json.dumps(note)
    if envelope == "sns":
        body = json.dumps({"Type": "Notification", "Message": body})
    sqs.send_message(QueueUrl=queue_url, MessageBody=body)
    foreign = dict(note, inferenceId="someone-else", requestParameters={})
    sqs.send_message(QueueUrl=queue_url, MessageBody=json.dumps(foreign))
    t.poll_once()
    obs = backend(vj_spec, t).observe(seg(vj_spec, attempts=1), 1)
    assert obs.current.phase is AttemptPhase.FAILED and obs.current.reason == INFERENCE_FAILED
    assert "server error (500)" in (obs.current.message or "")
    # Ours is consumed; someone else's stays for its owner (hidden for a while, not deleted).
    counts = sqs.get_queue_attributes(
        QueueUrl=queue_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    assert sum(int(v) for v in counts.values()) == 1


def test_no_outcome_within_segment_seconds_fails_the_attempt(aws: MotoServer) -> None:
    t = tracker(aws)
    vj_spec = managed_spec(segment_seconds=60)
    view = seg(vj_spec)
    backend(vj_spec, t).submit(view, 1)
    receipt = Receipt.from_json(read(aws, receipt_uri(view, 1)))
    running_view = seg(vj_spec, attempts=1)
    soon = receipt.submitted_at + timedelta(seconds=59)
    assert backend(vj_spec, t, soon).observe(running_view, 1).current.phase is (
        AttemptPhase.RUNNING
    )
    late = receipt.submitted_at + timedelta(seconds=60)
    obs = backend(vj_spec, t, late).observe(running_view, 1)
    assert obs.current.phase is AttemptPhase.FAILED and obs.current.reason == TIMEOUT
    assert obs.current.finished_at == late and not obs.active_attempts
    snap = running_snapshot(vj_spec, running_view, obs, now=late)
    [patch] = reconcile(snap, Fetched(), CONFIG).segment_patches
    assert patch.retry and patch.patch["lastFailureReason"] == TIMEOUT


def test_a_restarted_operator_adopts_the_invocation(aws: MotoServer) -> None:
    calls = Calls(aws)
    vj_spec = managed_spec()
    view = seg(vj_spec)
    backend(vj_spec, tracker(aws, calls)).submit(view, 1)
    first = Receipt.from_json(read(aws, receipt_uri(view, 1)))

    fresh = tracker(aws, calls)  # the new process knows nothing
    running_view = seg(vj_spec, attempts=1)
    obs = backend(vj_spec, fresh).observe(running_view, 1)
    assert obs.current.phase is AttemptPhase.MISSING  # the reconcile round resubmits it
    snap = running_snapshot(vj_spec, running_view, obs)
    actions = reconcile(snap, Fetched(), CONFIG)
    assert [(r.segment.index, r.attempt) for r in actions.resubmits] == [(0, 1)]
    backend(vj_spec, fresh).submit(running_view, 1)
    assert len(calls.params) == 1  # adopted, not invoked again
    [record] = fresh.snapshot(REF.uid)
    assert record.submitted_at == first.submitted_at and record.active


def test_an_invoke_error_fails_the_attempt_instead_of_hanging(aws: MotoServer) -> None:
    def broken(service: str, region: str) -> Any:
        if service == "sagemaker-runtime":
            raise RuntimeError("no credentials")
        return aws.client(service)

    workspace = Workspace(StorageConfig(endpoint_url=aws.endpoint_url, path_style=True))
    t = ManagedTracker(workspace, broken, poll_seconds=3600)
    vj_spec = managed_spec()
    view = seg(vj_spec)
    backend(vj_spec, t).submit(view, 1)
    # The status never recorded attempt 1 (say the patch failed too): it is adopted, then
    # fails like any attempt.
    obs = backend(vj_spec, t).observe(view, 0)
    assert obs.latest_attempt == 1 and not obs.active_attempts
    obs = backend(vj_spec, t).observe(seg(vj_spec, attempts=1), 1)
    assert obs.current.phase is AttemptPhase.FAILED and obs.current.reason == INVOKE_FAILED


def test_cancel_stops_waiting(aws: MotoServer) -> None:
    t = tracker(aws)
    vj_spec = managed_spec()
    view = seg(vj_spec, attempts=1)
    the_backend = backend(vj_spec, t)
    the_backend.submit(view, 1)
    the_backend.cancel(view, [1])
    assert backend(vj_spec, t).observe(view, 1).active_attempts == frozenset()


def test_failure_notification_parsing() -> None:
    note = {"inferenceId": "x", "invocationStatus": "Failed"}
    assert failure_notification(json.dumps(note)) == note
    wrapped = {"Type": "Notification", "Message": json.dumps(note)}
    assert failure_notification(json.dumps(wrapped)) == note
    assert failure_notification("not json") is None
    assert failure_notification(json.dumps({"Event": "s3:TestEvent"})) is None


def running_snapshot(vj_spec: Any, view: SegmentView, obs: Any, **kw: Any) -> Any:
    snap = snapshot(
        vj_spec=vj_spec,
        vj_status=status(phase="Running", segmentsTotal=1),
        segments=[view],
        **kw,
    )
    return dataclasses.replace(snap, observations={0: obs})


def test_timeout_uses_the_time_the_backend_was_built(aws: MotoServer) -> None:
    t = tracker(aws)
    vj_spec = managed_spec(segment_seconds=60)
    built = backend(vj_spec, t)
    assert abs((built.now - datetime.now(UTC)).total_seconds()) < 5


def test_the_poller_thread_learns_outcomes_by_itself(aws: MotoServer) -> None:
    workspace = Workspace(StorageConfig(endpoint_url=aws.endpoint_url, path_style=True))
    t = ManagedTracker(workspace, Calls(aws).client, poll_seconds=0.05)
    try:
        vj_spec = managed_spec()
        backend(vj_spec, t).submit(seg(vj_spec), 1)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            [record] = t.snapshot(REF.uid)
            if not record.active:
                break
            time.sleep(0.05)
        assert record.state.phase is AttemptPhase.SUCCEEDED
    finally:
        t.stop()
