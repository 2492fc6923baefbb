"""Every event source end to end: a real storage server notifies, the watcher subprocess
(holding only its ServiceAccount's token) patches the Segment on the real API server.

Parametrized over sqs (moto S3 -> SQS), pubsub (fake-gcs-server -> Pub/Sub emulator),
seaweedfs-webhook (weed filer webhook) and minio-webhook (posted by the test: no MinIO here).
"""

from __future__ import annotations

import time
import uuid

import pytest
from kubernetes import client

from .channels import Channel, SqsChannel
from .conftest import WatcherEnv
from .harness import (
    completion,
    create_segment,
    create_videojob,
    delete_segment,
    delete_videojob,
    output_uri,
    wait_completion,
)

pytestmark = pytest.mark.cluster

IGNORED = "stereo_watcher_events_ignored_total"
DUPLICATE = "stereo_watcher_events_duplicate_total"


def _segment(
    api: client.ApiClient, namespace: str, channel: Channel, videojob: str = "film", index: int = 0
) -> tuple[str, str, str]:
    """A VideoJob and one of its Segments; returns (segment name, uid, output key)."""
    uid = create_videojob(api, namespace, videojob)
    output = output_uri(channel.root, namespace, videojob, uid, index)
    name = create_segment(api, namespace, videojob, uid, index, output)
    return name, uid, _key(channel, output)


def _key(channel: Channel, uri: str) -> str:
    return uri.removeprefix(f"{channel.scheme}://{channel.bucket}/")


def test_object_written_completes_the_segment(
    env: WatcherEnv, channel: Channel, api: client.ApiClient, namespace: str
) -> None:
    name, _, key = _segment(api, namespace, channel)
    written = channel.write(key, b"stereo" * 1000)
    got = wait_completion(api, namespace, name, source=channel.source, **written.expected())
    assert got["uri"] == f"{channel.scheme}://{channel.bucket}/{key}"
    assert got["eventTime"] <= got["recordedAt"]
    assert (
        env.watcher.counter("stereo_watcher_event_to_patch_seconds_count", source=channel.source)
        >= 1
    )


def test_the_same_event_three_times_changes_nothing(
    env: WatcherEnv, channel: Channel, api: client.ApiClient, namespace: str
) -> None:
    name, _, key = _segment(api, namespace, channel)
    written = channel.write(key, b"once" * 500)
    first = wait_completion(api, namespace, name, **written.expected())
    (notification,) = channel.captured(key)
    before = env.watcher.counter(DUPLICATE, source=channel.source)
    for _ in range(3):
        channel.redeliver(notification)
    env.watcher.wait_counter(DUPLICATE, before + 3, source=channel.source)
    assert completion(api, namespace, name) == first  # recordedAt included


def test_an_older_event_after_a_newer_one_changes_nothing(
    env: WatcherEnv, channel: Channel, api: client.ApiClient, namespace: str
) -> None:
    name, _, key = _segment(api, namespace, channel)
    v1 = channel.write(key, b"first attempt" * 100)
    wait_completion(api, namespace, name, **v1.expected())
    time.sleep(0.01)  # S3 without sequencers (moto) orders by eventTime, in milliseconds
    v2 = channel.write(key, b"second attempt, longer" * 100)
    newest = wait_completion(api, namespace, name, **v2.expected())
    older, newer = channel.captured(key, 2)
    before = env.watcher.counter(IGNORED, source=channel.source, reason="older-than-recorded")
    channel.redeliver(older)  # late delivery of the first write
    channel.redeliver(newer)  # and a duplicate of the newest
    env.watcher.wait_counter(
        IGNORED, before + 1, source=channel.source, reason="older-than-recorded"
    )
    env.watcher.wait_counter(DUPLICATE, 1, source=channel.source)
    assert completion(api, namespace, name) == newest


def test_an_event_for_a_recreated_videojobs_old_uid_is_ignored(
    env: WatcherEnv, channel: Channel, api: client.ApiClient, namespace: str
) -> None:
    name, old_uid, old_key = _segment(api, namespace, channel)
    old = channel.write(old_key, b"old incarnation" * 100)
    wait_completion(api, namespace, name, **old.expected())
    (old_notification,) = channel.captured(old_key)
    # The VideoJob is deleted and created again under the same name: a new UID.
    delete_segment(api, namespace, name)
    delete_videojob(api, namespace, "film")
    new_name, new_uid, new_key = _segment(api, namespace, channel)
    assert (new_name, new_uid != old_uid) == (name, True)
    before = env.watcher.counter(IGNORED, source=channel.source, reason="videojob-uid-mismatch")
    channel.redeliver(old_notification)  # a late event about the old incarnation's output
    channel.write(old_key, b"a straggler of the old incarnation" * 100)
    env.watcher.wait_counter(
        IGNORED, before + 2, source=channel.source, reason="videojob-uid-mismatch"
    )
    assert completion(api, namespace, name) is None
    new = channel.write(new_key, b"new incarnation" * 100)
    got = wait_completion(api, namespace, name, **new.expected())
    assert new_uid in got["uri"]


def test_unrelated_keys_and_unknown_segments_are_acknowledged(
    env: WatcherEnv, channel: Channel, api: client.ApiClient, namespace: str
) -> None:
    name, _, key = _segment(api, namespace, channel)
    unrelated = env.watcher.counter(IGNORED, source=channel.source, reason="not-segment-output")
    missing = env.watcher.counter(IGNORED, source=channel.source, reason="segment-not-found")
    channel.write(key.replace("output.mp4", "input.mp4"), b"segment input")
    channel.write(channel.key("elsewhere", f"{uuid.uuid4().hex}.txt"), b"notes")
    ghost = output_uri(channel.root, namespace, "ghost", str(uuid.uuid4()), 7)
    channel.write(_key(channel, ghost), b"output of a VideoJob that does not exist")
    env.watcher.wait_counter(
        IGNORED, unrelated + 2, source=channel.source, reason="not-segment-output"
    )
    env.watcher.wait_counter(
        IGNORED, missing + 1, source=channel.source, reason="segment-not-found"
    )
    assert completion(api, namespace, name) is None
    # The watcher is still applying events afterwards.
    written = channel.write(key, b"the real output")
    wait_completion(api, namespace, name, **written.expected())


def test_sqs_direct_bucket_notification_and_multipart_upload(
    env: WatcherEnv, api: client.ApiClient, namespace: str
) -> None:
    """S3 -> SQS without SNS: the queue's first message is an s3:TestEvent; a multipart
    upload arrives as CompleteMultipartUpload (moto also sends a Put for it)."""
    channel = env.channels["sqs"]
    assert isinstance(channel, SqsChannel)
    bucket = channel.direct_bucket
    tests = env.watcher.counter(IGNORED, source="sqs", reason="test-event")
    channel.notify_directly()  # (re)configuring the notification sends an s3:TestEvent
    env.watcher.wait_counter(IGNORED, tests + 1, source="sqs", reason="test-event")
    uid = create_videojob(api, namespace, "film")
    output = output_uri(f"s3://{bucket}/ws", namespace, "film", uid, 0)
    name = create_segment(api, namespace, "film", uid, 0, output)
    key = output.removeprefix(f"s3://{bucket}/")
    s3 = channel.s3
    received = env.watcher.counter("stereo_watcher_events_received_total", source="sqs")
    upload = s3.create_multipart_upload(Bucket=bucket, Key=key)
    parts = []
    for number in (1, 2):
        body = bytes([number]) * (5 * 1024 * 1024 if number == 1 else 1000)
        part = s3.upload_part(
            Bucket=bucket, Key=key, UploadId=upload["UploadId"], PartNumber=number, Body=body
        )
        parts.append({"ETag": part["ETag"], "PartNumber": number})
    done = s3.complete_multipart_upload(
        Bucket=bucket, Key=key, UploadId=upload["UploadId"], MultipartUpload={"Parts": parts}
    )
    etag = str(done["ETag"]).strip('"')
    assert etag.endswith("-2")
    wait_completion(api, namespace, name, etag=etag, size=5 * 1024 * 1024 + 1000, source="sqs")
    env.watcher.wait_counter("stereo_watcher_events_received_total", received + 2, source="sqs")
