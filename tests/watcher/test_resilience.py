"""At-least-once under failure: the API server paused (SIGSTOP), the watcher killed with
SIGKILL mid-delivery, SIGTERM with an event in flight; and the webhook endpoints' refusals
(401 without a valid token, 400 for a malformed body) that change nothing."""

from __future__ import annotations

import json
import secrets
import signal
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from tests.integration.kube import eventually
from tests.servers import free_port, http_status

from . import payloads
from .channels import Channel, MinioChannel, PubSubChannel, SqsChannel, Written
from .conftest import SOURCES, WatcherEnv
from .harness import (
    WatcherProcess,
    api_server_paused,
    completion,
    create_segment,
    create_videojob,
    output_uri,
    wait_completion,
)

pytestmark = pytest.mark.cluster

ERRORS = "stereo_watcher_errors_total"


def _short(source: str) -> str:
    return source.split("-")[0]


def _segments(api: client.ApiClient, namespace: str, env: WatcherEnv) -> dict[str, tuple[str, str]]:
    """One VideoJob and Segment per source: {source: (segment name, output key)}."""
    out = {}
    for source, channel in env.channels.items():
        videojob = f"film-{_short(source)}"
        uid = create_videojob(api, namespace, videojob)
        output = output_uri(channel.root, namespace, videojob, uid, 0)
        name = create_segment(api, namespace, videojob, uid, 0, output)
        out[source] = (name, output.removeprefix(f"{channel.scheme}://{channel.bucket}/"))
    return out


def _write_all(env: WatcherEnv, segments: dict[str, tuple[str, str]]) -> dict[str, Written]:
    return {
        source: env.channels[source].write(key, f"output via {source}".encode() * 50)
        for source, (_, key) in segments.items()
    }


def _wait_stuck(env: WatcherEnv, before: dict[str, float]) -> None:
    """Every source's event reached the watcher and failed against the paused API server."""
    for source in SOURCES:
        env.watcher.wait_counter(
            ERRORS, before[source] + 1, timeout=20, source=source, reason="api-unavailable"
        )


def _api_errors(env: WatcherEnv) -> dict[str, float]:
    return {s: env.watcher.counter(ERRORS, source=s, reason="api-unavailable") for s in SOURCES}


def _wait_all_applied(
    api: client.ApiClient,
    namespace: str,
    segments: dict[str, tuple[str, str]],
    written: dict[str, Written],
    timeout: float,
) -> None:
    deadline = time.monotonic() + timeout
    for source, (name, _) in segments.items():
        left = max(1.0, deadline - time.monotonic())
        wait_completion(api, namespace, name, timeout=left, **written[source].expected())


def test_api_server_outage_events_are_applied_after_it_returns(
    env: WatcherEnv, api: client.ApiClient, namespace: str
) -> None:
    segments = _segments(api, namespace, env)
    before = _api_errors(env)
    with api_server_paused(env.kubeconfig):
        written = _write_all(env, segments)
        _wait_stuck(env, before)

        def unready() -> dict[str, Any] | None:
            state = env.watcher.readyz()
            return state if state and not state["ready"] else None

        state = eventually(unready, 10, "/readyz to report the API server unreachable")
        assert state["checks"]["apiServer"] is False
    _wait_all_applied(api, namespace, segments, written, timeout=45)
    eventually(lambda: http_status(f"{env.watcher.url}/readyz") == 200, 15, "ready again")
    # Nothing was lost or applied twice.
    for source, (name, _) in segments.items():
        assert (completion(api, namespace, name) or {}).get("source") == source


def test_watcher_killed_mid_delivery_loses_nothing(
    env: WatcherEnv, api: client.ApiClient, namespace: str
) -> None:
    segments = _segments(api, namespace, env)
    before = _api_errors(env)
    try:
        with api_server_paused(env.kubeconfig):
            written = _write_all(env, segments)
            # Received, not applied (the API server does not answer), not acknowledged.
            _wait_stuck(env, before)
            env.watcher.kill()
        env.watcher.start()
        # SQS: the visibility timeout lapses; Pub/Sub: the ack deadline lapses; SeaweedFS:
        # the filer retries the failed post; MinIO: the sender's queue retries.
        _wait_all_applied(api, namespace, segments, written, timeout=60)
    finally:
        env.restart_on_a_fresh_subscription()


@pytest.fixture
def slow_watcher(env: WatcherEnv, tmp_path: Path) -> Any:
    """A second watcher, webhooks only, that retries an unreachable API server for 30 s."""
    token = secrets.token_urlsafe(16)
    (tmp_path / "token").write_text(token)
    config = {
        "roots": [env.channels["minio-webhook"].root],
        "webhook": {
            "tokenFile": str(tmp_path / "token"),
            "seaweedfs": False,
            "retryBudgetSeconds": 30,
        },
        "http": {"host": "127.0.0.1", "port": free_port()},
        "kubernetes": {
            "kubeconfig": str(yaml_path(env)),
            "requestTimeoutSeconds": 1.0,
            "probeIntervalSeconds": 0.5,
            "readyWindowSeconds": 2,
        },
        "retry": {"initialBackoffSeconds": 0.1, "maxBackoffSeconds": 0.5},
        "shutdownGraceSeconds": 30,
    }
    watcher = WatcherProcess(tmp_path, config, {})
    watcher.start()
    yield watcher, token
    watcher.kill()


def yaml_path(env: WatcherEnv) -> Path:
    import yaml

    config = yaml.safe_load(env.watcher.config_path.read_text())
    return Path(config["kubernetes"]["kubeconfig"])


def test_sigterm_finishes_the_event_in_flight_then_exits(
    env: WatcherEnv,
    slow_watcher: tuple[WatcherProcess, str],
    api: client.ApiClient,
    namespace: str,
) -> None:
    watcher, token = slow_watcher
    channel = env.channels["minio-webhook"]
    uid = create_videojob(api, namespace, "film")
    output = output_uri(channel.root, namespace, "film", uid, 0)
    name = create_segment(api, namespace, "film", uid, 0, output)
    key = output.removeprefix(f"s3://{channel.bucket}/")
    body = json.dumps(payloads.minio_body(key=key, bucket=channel.bucket, size=5)).encode()
    answers: list[tuple[int, dict[str, Any]]] = []
    with api_server_paused(env.kubeconfig):
        poster = threading.Thread(
            target=lambda: answers.append(watcher.post("/events/minio", body, token))
        )
        poster.start()
        watcher.wait_counter(ERRORS, 1, source="minio-webhook", reason="api-unavailable")
        assert watcher.process is not None
        watcher.process.send_signal(signal.SIGTERM)
        # Draining: not ready, new events refused with 503 so the sender retries elsewhere.
        eventually(
            lambda: (watcher.readyz() or {}).get("checks", {}).get("shuttingDown"),
            5,
            "readiness to report shutting down",
        )
        assert watcher.post("/events/minio", body, token)[0] == 503
        assert watcher.process.poll() is None  # still finishing the event in flight
    poster.join(30)
    assert answers and answers[0][0] == 200, answers
    assert watcher.process.wait(20) == 0
    wait_completion(api, namespace, name, source="minio-webhook", size=5, timeout=5)
    messages = [line["msg"] for line in watcher.log_lines()]
    assert messages.index("shutting down") < messages.index("watcher stopped")


WEBHOOKS = ["minio-webhook", "seaweedfs-webhook"]


def _webhook_body(channel: Channel, key: str) -> bytes:
    if isinstance(channel, MinioChannel):
        return json.dumps(payloads.minio_body(key=key, bucket=channel.bucket, size=7)).encode()
    path = f"/buckets/{channel.bucket}/{key}"
    return json.dumps(payloads.seaweedfs_file_event(path=path, size=7)).encode()


def _path(source: str) -> str:
    return f"/events/{_short(source)}"


@pytest.mark.parametrize("source", WEBHOOKS)
def test_webhook_without_a_valid_token_is_refused(
    env: WatcherEnv, source: str, api: client.ApiClient, namespace: str
) -> None:
    channel = env.channels[source]
    uid = create_videojob(api, namespace, "film")
    output = output_uri(channel.root, namespace, "film", uid, 0)
    name = create_segment(api, namespace, "film", uid, 0, output)
    body = _webhook_body(channel, output.removeprefix(f"s3://{channel.bucket}/"))
    before = env.watcher.counter(ERRORS, source=source, reason="unauthorized")
    received = env.watcher.counter("stereo_watcher_events_received_total", source=source)
    for token in (None, "", "wrong", env.token + "x", env.token[:-1]):
        status, answer = env.watcher.post(_path(source), body, token)
        assert status == 401, (token, status, answer)
    assert env.watcher.counter(ERRORS, source=source, reason="unauthorized") == before + 5
    assert env.watcher.counter("stereo_watcher_events_received_total", source=source) == received
    assert completion(api, namespace, name) is None
    # The same body with the token is applied: it was refused for the token alone.
    status, answer = env.watcher.post(_path(source), body, env.token)
    assert (status, answer["applied"]) == (200, 1), answer
    wait_completion(api, namespace, name, size=7, source=source, timeout=5)


@pytest.mark.parametrize("source", WEBHOOKS)
def test_malformed_webhook_body_is_refused_and_the_watcher_keeps_running(
    env: WatcherEnv, source: str, api: client.ApiClient, namespace: str
) -> None:
    channel = env.channels[source]
    uid = create_videojob(api, namespace, "film")
    output = output_uri(channel.root, namespace, "film", uid, 0)
    name = create_segment(api, namespace, "film", uid, 0, output)
    key = output.removeprefix(f"s3://{channel.bucket}/")
    good = json.loads(_webhook_body(channel, key))
    if source == "minio-webhook":
        broken = dict(good, Records=[{"eventName": "s3:ObjectCreated:Put"}])
        reason = "missing s3.bucket.name"
    else:
        broken = dict(good, message={"new_parent_path": "/buckets"})
        reason = "without message.new_entry"
    bodies = [b"{", b"\xff\xfe\x00", b"[]", b'"text"', json.dumps(broken).encode()]
    before = env.watcher.counter(ERRORS, source=source, reason="malformed")
    for body in bodies:
        status, answer = env.watcher.post(_path(source), body, env.token)
        assert status == 400, (body, status, answer)
        assert answer["error"].startswith("malformed body:")
    assert reason in answer["error"]
    assert env.watcher.counter(ERRORS, source=source, reason="malformed") == before + len(bodies)
    assert completion(api, namespace, name) is None
    assert env.watcher.process is not None and env.watcher.process.poll() is None
    assert http_status(f"{env.watcher.url}/healthz") == 200
    status, answer = env.watcher.post(_path(source), json.dumps(good).encode(), env.token)
    assert status == 200, answer
    wait_completion(api, namespace, name, size=7, timeout=5)


def test_output_written_before_its_segment_exists_is_applied_once_it_does(
    env: WatcherEnv, api: client.ApiClient, namespace: str
) -> None:
    """The VideoJob exists but its Segment not yet: the event is retried (not dropped)
    while it is younger than pendingSegmentGraceSeconds."""
    channel = env.channels["sqs"]
    uid = create_videojob(api, namespace, "film")
    output = output_uri(channel.root, namespace, "film", uid, 0)
    before = env.watcher.counter(ERRORS, source="sqs", reason="segment-pending")
    written = channel.write(output.removeprefix(f"s3://{channel.bucket}/"), b"early" * 10)
    env.watcher.wait_counter(ERRORS, before + 1, source="sqs", reason="segment-pending")
    name = create_segment(api, namespace, "film", uid, 0, output)
    wait_completion(api, namespace, name, timeout=20, **written.expected())


def test_health_readiness_and_metrics(env: WatcherEnv) -> None:
    assert http_status(f"{env.watcher.url}/healthz") == 200
    state = env.watcher.readyz()
    assert state is not None and state["ready"] is True
    assert state["checks"]["apiServer"] is True
    assert all(state["checks"]["sources"].values())
    assert len(state["checks"]["sources"]) == 3  # sqs, pubsub, webhooks
    text = urllib_get(f"{env.watcher.url}/metrics")
    for name in (
        "stereo_watcher_events_received_total",
        "stereo_watcher_events_applied_total",
        "stereo_watcher_events_duplicate_total",
        "stereo_watcher_events_ignored_total",
        "stereo_watcher_errors_total",
        "stereo_watcher_event_to_patch_seconds_bucket",
        "stereo_watcher_source_connected",
        "stereo_watcher_api_server_reachable",
    ):
        assert name in text, name
    # Unknown paths and methods are not events.
    assert http_status(f"{env.watcher.url}/events/{uuid.uuid4().hex}") == 404


def urllib_get(url: str) -> str:
    import urllib.request

    with urllib.request.urlopen(url, timeout=5) as response:
        return str(response.read().decode())


def test_malformed_queue_messages_are_counted_and_dropped(env: WatcherEnv) -> None:
    """A message that can never parse is acknowledged (not redelivered forever)."""
    sqs = env.channels["sqs"]
    pubsub = env.channels["pubsub"]
    assert isinstance(sqs, SqsChannel) and isinstance(pubsub, PubSubChannel)
    before = {
        s: env.watcher.counter(ERRORS, source=s, reason="malformed") for s in ("sqs", "pubsub")
    }
    sqs.sqs.send_message(QueueUrl=sqs.queue_url, MessageBody="this is not an S3 notification")
    pubsub.redeliver(
        (
            {
                "eventType": "OBJECT_FINALIZE",
                "payloadFormat": "JSON_API_V1",
                "bucketId": pubsub.bucket,
                "objectId": "x",
            },
            b"<not json>",
        )
    )
    for source in ("sqs", "pubsub"):
        env.watcher.wait_counter(ERRORS, before[source] + 1, source=source, reason="malformed")

    def queue_empty() -> bool:
        names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
        attributes = sqs.sqs.get_queue_attributes(QueueUrl=sqs.queue_url, AttributeNames=names)
        return sum(int(v) for v in attributes["Attributes"].values()) == 0

    eventually(queue_empty, 10, "the malformed SQS message to be deleted")
    assert env.watcher.process is not None and env.watcher.process.poll() is None
