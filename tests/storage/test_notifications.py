"""Each launcher's event wiring, driven by uploads through the adapters."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus

import pytest

from stereo_storage import StorageConfig, open_store
from tests.servers import FakeGcsServer, MotoServer, ReceivedPost, SeaweedFS, WebhookReceiver

from .conftest import BUCKET, s3_config


def test_moto_bucket_notification_reaches_sqs(
    moto_server: MotoServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bucket = f"notified-{uuid.uuid4().hex[:8]}"
    wiring = moto_server.create_bucket_with_queue(bucket, f"events-{uuid.uuid4().hex[:8]}")
    sqs = moto_server.client("sqs")

    def receive() -> list[dict[str, Any]]:
        response = sqs.receive_message(
            QueueUrl=wiring.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1
        )
        return [json.loads(m["Body"]) for m in response.get("Messages", [])]

    first = receive()
    assert first and first[0]["Event"] == "s3:TestEvent"

    # Credentials from environment variables named in the config.
    monkeypatch.setenv("SEGMENT_STORE_KEY", moto_server.access_key)
    monkeypatch.setenv("SEGMENT_STORE_SECRET", moto_server.secret_key)
    config = s3_config(
        moto_server,
        access_key_id_env="SEGMENT_STORE_KEY",
        secret_access_key_env="SEGMENT_STORE_SECRET",
    )
    source = tmp_path / "seg.mp4"
    source.write_bytes(b"x" * 1000)
    open_store("s3://", config).upload_file(source, f"s3://{bucket}/jobs/j 1/seg-0001.mp4")

    records = [r for body in receive() for r in body.get("Records", [])]
    assert len(records) == 1
    record = records[0]
    assert record["eventName"].startswith("ObjectCreated:")
    assert record["s3"]["bucket"]["name"] == bucket
    assert unquote_plus(record["s3"]["object"]["key"]) == "jobs/j 1/seg-0001.mp4"
    assert record["s3"]["object"]["size"] == 1000


def test_fake_gcs_upload_publishes_object_finalize(fake_gcs: FakeGcsServer, tmp_path: Path) -> None:
    pubsub = fake_gcs.pubsub
    assert pubsub is not None
    subscription = fake_gcs.create_subscription(f"sub-{uuid.uuid4().hex[:8]}")
    source = tmp_path / "seg.mp4"
    source.write_bytes(b"y" * 2048)
    key = f"jobs/{uuid.uuid4().hex[:8]}/seg-0001.mp4"

    # An explicit endpoint instead of STORAGE_EMULATOR_HOST.
    store = open_store("gs://", StorageConfig(endpoint_url=fake_gcs.endpoint_url, anonymous=True))
    store.upload_file(source, f"gs://{BUCKET}/{key}")
    stat = store.stat(f"gs://{BUCKET}/{key}")
    assert stat is not None

    deadline = time.monotonic() + 15
    messages: list[Any] = []
    while not messages and time.monotonic() < deadline:
        pulled = pubsub.pull(subscription, timeout=2)
        messages = [m for m in pulled if m.attributes.get("objectId") == key]
    assert messages, "no OBJECT_FINALIZE for the upload"
    attributes = messages[0].attributes
    assert attributes["eventType"] == "OBJECT_FINALIZE"
    assert attributes["bucketId"] == BUCKET
    assert attributes["payloadFormat"] == "JSON_API_V1"
    assert attributes["objectGeneration"] == stat.generation
    assert json.loads(messages[0].data)["size"] == "2048"


def test_seaweedfs_upload_posts_filer_webhook(
    seaweedfs: SeaweedFS, webhook: WebhookReceiver, tmp_path: Path
) -> None:
    # Credentials from a mounted-Secret-like directory.
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "AWS_ACCESS_KEY_ID").write_text(seaweedfs.access_key + "\n")
    (secret / "AWS_SECRET_ACCESS_KEY").write_text(seaweedfs.secret_key + "\n")
    store = open_store("s3://", s3_config(seaweedfs, secret_dir=secret))

    source = tmp_path / "seg.mp4"
    source.write_bytes(b"z" * 3000)
    key = f"jobs/{uuid.uuid4().hex[:8]}/seg-0001.mp4"
    store.upload_file(source, f"s3://{BUCKET}/{key}")

    def is_ours(post: ReceivedPost) -> bool:
        return bool(post.json().get("key") == f"/buckets/{BUCKET}/{key}")

    post = webhook.wait_for(is_ours, timeout=15)
    assert post.path == "/seaweedfs"
    body = post.json()
    assert body["event_type"] == "create"
    entry = body["message"]["new_entry"]
    assert entry["name"] == "seg-0001.mp4"
    assert not entry.get("is_directory")
    assert int(entry["attributes"]["file_size"]) == 3000
