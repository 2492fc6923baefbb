"""More delivery formats end to end, through the real servers and the watcher subprocess:
S3 events through EventBridge (moto S3 -> EventBridge -> SQS, and the documented AWS shape
through the same queue), SNS control messages, a message with one bad record, Cloud Storage
notifications without payload, and Pub/Sub push subscriptions (the emulator pushing to the
watcher, and OIDC tokens signed with a local key)."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from stereo_types.names import GROUP, SEGMENT_PLURAL, VERSION
from tests.integration.kube import eventually
from tests.servers import free_port

from . import payloads
from .channels import MinioChannel, PubSubChannel, SqsChannel
from .conftest import WatcherEnv
from .harness import (
    WatcherProcess,
    completion,
    create_segment,
    create_videojob,
    output_uri,
    wait_completion,
)
from .oidc_keys import PUSH_ACCOUNT, SigningKeys

pytestmark = pytest.mark.cluster

IGNORED = "stereo_watcher_events_ignored_total"
ERRORS = "stereo_watcher_errors_total"
APPLIED = "stereo_watcher_events_applied_total"


def _segment(
    api: client.ApiClient, namespace: str, root: str, videojob: str = "film", index: int = 0
) -> tuple[str, str]:
    """A VideoJob and one Segment whose output is under root: (segment name, output key)."""
    uid = create_videojob(api, namespace, videojob)
    output = output_uri(root, namespace, videojob, uid, index)
    name = create_segment(api, namespace, videojob, uid, index, output)
    bucket_prefix = root.rsplit("/", 1)[0] + "/"
    return name, output.removeprefix(bucket_prefix)


def _sqs(env: WatcherEnv) -> SqsChannel:
    channel = env.channels["sqs"]
    assert isinstance(channel, SqsChannel)
    return channel


def _queue_empty(channel: SqsChannel) -> bool:
    names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    attributes = channel.sqs.get_queue_attributes(QueueUrl=channel.queue_url, AttributeNames=names)
    return sum(int(v) for v in attributes["Attributes"].values()) == 0


# --- S3 through EventBridge -----------------------------------------------------------------------


def test_s3_through_eventbridge_completes_the_segment(
    env: WatcherEnv, api: client.ApiClient, namespace: str
) -> None:
    """moto's S3 sends the bucket's events to EventBridge, whose rule puts them on the
    watcher's queue: the real EventBridge body (key not URL-encoded)."""
    channel = _sqs(env)
    bucket = channel.eventbridge_bucket
    name, key = _segment(api, namespace, f"s3://{bucket}/ws")
    assert key.startswith("ws/")
    data = b"through eventbridge" * 100
    etag = str(channel.s3.put_object(Bucket=bucket, Key=key, Body=data)["ETag"]).strip('"')
    got = wait_completion(api, namespace, name, size=len(data), etag=etag, source="sqs")
    assert got["uri"] == f"s3://{bucket}/{key}"
    # moto sends the sequencer of the AWS documentation's example, the same for every write.
    assert got["sequencer"] == "617f08299329d189"


def test_documented_eventbridge_events_through_sqs_order_by_sequencer(
    env: WatcherEnv, api: client.ApiClient, namespace: str
) -> None:
    """The shape the Amazon S3 user guide documents, through the real queue. The overwrite's
    sequencer is shorter and compares newer only when padded on the right."""
    channel = _sqs(env)
    name, key = _segment(api, namespace, channel.root)

    def send(sequencer: str, size: int) -> None:
        body = payloads.eventbridge_object_created(
            key=key, bucket=channel.bucket, size=size, sequencer=sequencer
        )
        channel.sqs.send_message(QueueUrl=channel.queue_url, MessageBody=json.dumps(body))

    send("0066B2D4E1A8F3C7D2FF", 100)
    wait_completion(api, namespace, name, size=100, sequencer="0066B2D4E1A8F3C7D2FF")
    send("0066B2D4E1A8F3C7D3", 200)  # the overwrite
    newest = wait_completion(api, namespace, name, size=200, sequencer="0066B2D4E1A8F3C7D3")
    before = env.watcher.counter(IGNORED, source="sqs", reason="older-than-recorded")
    send("0066B2D4E1A8F3C7D2FF", 100)  # the first write's event, delivered late
    env.watcher.wait_counter(IGNORED, before + 1, source="sqs", reason="older-than-recorded")
    assert completion(api, namespace, name) == newest
    eventually(lambda: _queue_empty(channel), 15, "the EventBridge messages to be deleted")


# --- SNS control messages, a bad record among good ones ------------------------------------------


def test_sns_control_messages_are_logged_with_what_to_do(env: WatcherEnv) -> None:
    channel = _sqs(env)
    malformed = env.watcher.counter(ERRORS, source="sqs", reason="malformed")
    before = {
        kind: env.watcher.counter(IGNORED, source="sqs", reason=reason)
        for kind, reason in (
            ("SubscriptionConfirmation", "sns-subscription-confirmation"),
            ("UnsubscribeConfirmation", "sns-unsubscribe-confirmation"),
        )
    }
    for kind in before:
        body = json.dumps(payloads.sns_control(kind))
        channel.sqs.send_message(QueueUrl=channel.queue_url, MessageBody=body)
    env.watcher.wait_counter(
        IGNORED,
        before["SubscriptionConfirmation"] + 1,
        source="sqs",
        reason="sns-subscription-confirmation",
    )
    env.watcher.wait_counter(
        IGNORED,
        before["UnsubscribeConfirmation"] + 1,
        source="sqs",
        reason="sns-unsubscribe-confirmation",
    )
    assert env.watcher.counter(ERRORS, source="sqs", reason="malformed") == malformed
    lines = [
        line
        for line in env.watcher.log_lines()
        if line.get("reason") == "sns-subscription-confirmation"
    ]
    assert lines, env.watcher.log_tail(20)
    assert lines[-1]["level"] == "WARNING"
    assert lines[-1]["topic"] == payloads.SNS_TOPIC
    assert lines[-1]["subscribe_url"] == payloads.SNS_SUBSCRIBE_URL
    assert "confirm" in lines[-1]["msg"]
    eventually(lambda: _queue_empty(channel), 15, "the SNS control messages to be deleted")


def test_one_bad_record_does_not_cost_the_good_ones(
    env: WatcherEnv, api: client.ApiClient, namespace: str
) -> None:
    sqs = _sqs(env)
    minio = env.channels["minio-webhook"]
    assert isinstance(minio, MinioChannel)
    via_sqs, sqs_key = _segment(api, namespace, sqs.root, "film-sqs")
    via_minio, minio_key = _segment(api, namespace, minio.root, "film-minio")
    bad = {"eventName": "ObjectCreated:Put", "eventTime": "2026-11-25T18:34:09.943Z", "s3": {}}
    before = {
        s: env.watcher.counter(ERRORS, source=s, reason="malformed-record")
        for s in ("sqs", "minio-webhook")
    }

    record = payloads.aws_record(key=sqs_key.replace("/", "%2F"), bucket=sqs.bucket, size=321)
    body = {"Records": [bad, record]}
    sqs.sqs.send_message(QueueUrl=sqs.queue_url, MessageBody=json.dumps(body))
    wait_completion(api, namespace, via_sqs, size=321, source="sqs")
    env.watcher.wait_counter(ERRORS, before["sqs"] + 1, source="sqs", reason="malformed-record")

    minio_body = payloads.minio_body(key=minio_key, bucket=minio.bucket, size=654)
    minio_body["Records"].append(bad)
    status, answer = env.watcher.post("/events/minio", json.dumps(minio_body).encode(), env.token)
    assert (status, answer["applied"], answer["malformed"], answer["received"]) == (200, 1, 1, 2)
    wait_completion(api, namespace, via_minio, size=654, source="minio-webhook")
    assert (
        env.watcher.counter(ERRORS, source="minio-webhook", reason="malformed-record")
        == before["minio-webhook"] + 1
    )
    eventually(lambda: _queue_empty(sqs), 15, "the SQS message to be deleted")


# --- Cloud Storage notifications without payload -------------------------------------------------


def _forget_completion(api: client.ApiClient, namespace: str, name: str) -> None:
    client.CustomObjectsApi(api).patch_namespaced_custom_object_status(
        GROUP, VERSION, namespace, SEGMENT_PLURAL, name, {"status": {"completion": None}}
    )
    assert completion(api, namespace, name) is None


def test_notification_without_payload_completes_from_the_object(
    env: WatcherEnv, api: client.ApiClient, namespace: str
) -> None:
    """payloadFormat NONE: attributes only. The watcher reads the notified generation from
    fake-gcs-server and records what a JSON_API_V1 notification would have said."""
    channel = env.channels["pubsub"]
    assert isinstance(channel, PubSubChannel)
    name, key = _segment(api, namespace, channel.root)
    written = channel.write(key, b"no payload" * 77)
    assert written.generation is not None
    from_json = wait_completion(api, namespace, name, **written.expected())
    ((attributes, _),) = channel.captured(key)
    _forget_completion(api, namespace, name)
    without_payload = {**attributes, "payloadFormat": "NONE"}
    channel.redeliver((without_payload, b""))
    from_attributes = wait_completion(api, namespace, name, **written.expected())

    def facts(c: dict[str, Any]) -> dict[str, Any]:
        # fake-gcs-server's JSON_API_V1 payload has no etag (GCS's has); the object read has.
        return {k: v for k, v in c.items() if k not in ("recordedAt", "etag")}

    assert facts(from_attributes) == facts(from_json)
    assert from_attributes["etag"] and from_attributes["size"] == 770
    # Again: a duplicate, decided without reading storage. A generation that is gone: ignored.
    duplicates = env.watcher.counter("stereo_watcher_events_duplicate_total", source="pubsub")
    gone = env.watcher.counter(IGNORED, source="pubsub", reason="object-gone")
    channel.redeliver((without_payload, b""))
    later = {**without_payload, "objectGeneration": str(written.generation + 1000)}
    channel.redeliver((later, b""))
    env.watcher.wait_counter(
        "stereo_watcher_events_duplicate_total", duplicates + 1, source="pubsub"
    )
    env.watcher.wait_counter(IGNORED, gone + 1, source="pubsub", reason="object-gone")
    assert completion(api, namespace, name) == from_attributes


# --- Pub/Sub push ---------------------------------------------------------------------------


PUSH_BUCKET = "watch-gcs-push"


@dataclass
class PushWatcher:
    watcher: WatcherProcess
    token: str
    keys: SigningKeys
    audience: str
    subscription: str

    @property
    def root(self) -> str:
        return f"gs://{PUSH_BUCKET}/ws"


@pytest.fixture
def push_watcher(env: WatcherEnv, tmp_path: Path) -> Iterator[PushWatcher]:
    """A second watcher serving only the push endpoint for the bucket watch-gcs-push (which
    the session's watcher does not watch), with a push subscription of the emulator on the
    bucket notifications' topic pointing at it (shared token in the URL), and OIDC tokens
    checked against a local key."""
    channel = env.channels["pubsub"]
    assert isinstance(channel, PubSubChannel)
    gcs, emulator = channel.gcs, channel.emulator
    if not getattr(gcs, "_push_bucket_created", False):
        gcs.create_bucket(PUSH_BUCKET)
        gcs._push_bucket_created = True  # type: ignore[attr-defined]
    token = secrets.token_urlsafe(16)
    (tmp_path / "token").write_text(token + "\n")
    keys = SigningKeys()
    keys.add("push-key")
    port = free_port()
    audience = f"http://127.0.0.1:{port}/events/pubsub"
    identity = json.loads(json.dumps(env.watcher.config["kubernetes"]))
    config = {
        "roots": [f"gs://{PUSH_BUCKET}/ws"],
        "webhook": {
            "minio": False,
            "seaweedfs": False,
            "pubsub": True,
            "pubsubOidc": {
                "audience": audience,
                "serviceAccountEmail": PUSH_ACCOUNT,
                "certsUrl": keys.certs_url,
            },
            "tokenFile": str(tmp_path / "token"),
            "retryBudgetSeconds": 1.5,
        },
        "http": {"host": "127.0.0.1", "port": port},
        "kubernetes": identity,
        "retry": {"initialBackoffSeconds": 0.1, "maxBackoffSeconds": 0.5},
        "shutdownGraceSeconds": 5,
    }
    watcher = WatcherProcess(tmp_path, config, {"STORAGE_EMULATOR_HOST": gcs.endpoint_url})
    watcher.start()
    from google.pubsub_v1 import PushConfig

    subscription = f"projects/{gcs.project}/subscriptions/push-{secrets.token_hex(4)}"
    subscriber = emulator.subscriber()
    subscriber.create_subscription(
        name=subscription,
        topic=gcs.topic_path,
        push_config=PushConfig(push_endpoint=f"{audience}?token={token}"),
        ack_deadline_seconds=10,
    )
    try:
        yield PushWatcher(watcher, token, keys, audience, subscription)
    finally:
        subscriber.delete_subscription(subscription=subscription)
        watcher.stop()
        keys.close()


def test_pubsub_push_from_the_emulator_completes_the_segment(
    env: WatcherEnv, push_watcher: PushWatcher, api: client.ApiClient, namespace: str
) -> None:
    channel = env.channels["pubsub"]
    assert isinstance(channel, PubSubChannel)
    name, key = _segment(api, namespace, push_watcher.root)
    blob = channel.gcs.client().bucket(PUSH_BUCKET).blob(key)
    blob.upload_from_string(b"pushed" * 99)
    got = wait_completion(
        api, namespace, name, generation=int(blob.generation or 0), size=594, source="pubsub"
    )
    assert got["uri"] == f"gs://{PUSH_BUCKET}/{key}"
    watcher = push_watcher.watcher
    watcher.wait_counter(APPLIED, 1, source="pubsub-push")
    # Without payload, through push: the object is read, the same completion results.
    _forget_completion(api, namespace, name)
    attributes = payloads.gcs_attributes_without_payload(
        name=key, generation=int(blob.generation or 0), bucket=PUSH_BUCKET
    )
    channel._publisher.publish(channel.gcs.topic_path, b"", **attributes).result(timeout=10)
    again = wait_completion(api, namespace, name, size=594, generation=int(blob.generation or 0))
    same = ("uri", "size", "generation", "eventTime", "source")
    assert {k: again[k] for k in same} == {k: got[k] for k in same}
    watcher.wait_counter(APPLIED, 2, source="pubsub-push")
    assert watcher.counter(ERRORS, source="pubsub-push", reason="unauthorized") == 0


def test_pubsub_push_with_an_oidc_token(
    env: WatcherEnv, push_watcher: PushWatcher, api: client.ApiClient, namespace: str
) -> None:
    """What Pub/Sub sends with --push-auth-service-account, posted to the real watcher: the
    body shape of the documentation, a token signed with a local key whose certificate the
    watcher fetches."""
    name, key = _segment(api, namespace, push_watcher.root)
    generation = time.time_ns() // 1000
    body = payloads.pubsub_push_body(
        payloads.gcs_attributes(name=key, generation=generation, bucket=PUSH_BUCKET),
        payloads.gcs_data(name=key, generation=generation, size=4096, bucket=PUSH_BUCKET),
        subscription=push_watcher.subscription,
    )
    encoded = json.dumps(body).encode()
    watcher, keys = push_watcher.watcher, push_watcher.keys
    forged = keys.token("push-key", push_watcher.audience, email="intruder@example.com")
    wrong_audience = keys.token("push-key", "https://elsewhere.example.com/")
    for token in (forged, wrong_audience, "not-the-shared-token"):
        status, answer = watcher.post("/events/pubsub", encoded, token)
        assert status == 401, answer
    assert completion(api, namespace, name) is None
    status, answer = watcher.post(
        "/events/pubsub", encoded, keys.token("push-key", push_watcher.audience)
    )
    assert (status, answer["applied"]) == (200, 1), answer
    wait_completion(api, namespace, name, generation=generation, size=4096, source="pubsub")
    # A redelivery (Pub/Sub delivers at least once) is acknowledged and changes nothing.
    first = completion(api, namespace, name)
    status, answer = watcher.post("/events/pubsub", encoded, push_watcher.token)
    assert (status, answer["duplicates"]) == (200, 1), answer
    assert completion(api, namespace, name) == first
    assert watcher.counter(ERRORS, source="pubsub-push", reason="unauthorized") == 3
    assert keys.fetches == 1
