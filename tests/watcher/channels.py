"""One channel per event source: write an object through the real storage server, find the
notification that server really sent, and deliver that same notification again.

MinIO is the exception: there is no MinIO server on these machines, so its channel stores
the object in moto's S3 and posts the event itself, in MinIO's webhook format, retrying
until the watcher accepts it as MinIO's queue store would.
"""

from __future__ import annotations

import json
import threading
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote_plus

from tests.servers import FakeGcsServer, MotoServer, SeaweedFS

from . import payloads
from .harness import RecordingProxy, WatcherProcess


@dataclass(frozen=True)
class Written:
    key: str
    size: int
    etag: str | None = None
    generation: int | None = None

    def expected(self) -> dict[str, Any]:
        """Fields the recorded completion must have."""
        fields: dict[str, Any] = {"size": self.size}
        if self.generation is not None:
            fields["generation"] = self.generation
        elif self.etag is not None:
            fields["etag"] = self.etag
        return fields


class Channel(ABC):
    source: str  # the watcher's metric label and CompletionSource
    scheme = "s3"
    bucket: str

    @property
    def root(self) -> str:
        return f"{self.scheme}://{self.bucket}/ws"

    def key(self, *parts: str) -> str:
        return "/".join(["ws", *parts])

    @abstractmethod
    def write(self, key: str, data: bytes) -> Written:
        """Store the object; its notification goes to the watcher."""

    @abstractmethod
    def captured(self, key: str, count: int = 1, timeout: float = 20.0) -> list[Any]:
        """The first count notifications the server sent for key, oldest first."""

    @abstractmethod
    def redeliver(self, notification: Any) -> None:
        """Deliver a captured notification to the watcher again."""

    def close(self) -> None:  # noqa: B027 - optional
        pass


def _wait(found: Any, count: int, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while len(found()) < count:
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: {len(found())} of {count} notifications seen")
        time.sleep(0.05)


class SqsChannel(Channel):
    """S3 -> SNS -> SQS fan-out (raw message delivery): the watcher's queue and a capture
    queue receive the very same body, which the tests replay. moto renders a separate event
    per direct queue configuration (eventTime differs by a millisecond), so a second direct
    queue would not give the watcher's exact event. A second bucket notifies the watcher's
    queue directly (S3 -> SQS): ``direct_bucket``; a third sends its events to EventBridge,
    whose rule targets the watcher's queue (S3 -> EventBridge -> SQS): ``eventbridge_bucket``."""

    source = "sqs"
    bucket = "watch-sqs"
    direct_bucket = "watch-sqs-direct"
    eventbridge_bucket = "watch-sqs-eb"

    def __init__(self, moto: MotoServer) -> None:
        self.moto = moto
        self.s3, self.sqs, sns = moto.client("s3"), moto.client("sqs"), moto.client("sns")
        self.queue_url = self.sqs.create_queue(QueueName="watcher-events")["QueueUrl"]
        self.capture_url = self.sqs.create_queue(QueueName="capture-events")["QueueUrl"]
        topic_arn = sns.create_topic(Name="watch-sqs-events")["TopicArn"]
        for url in (self.queue_url, self.capture_url):
            sns.subscribe(
                TopicArn=topic_arn,
                Protocol="sqs",
                Endpoint=self._arn(url),
                Attributes={"RawMessageDelivery": "true"},
            )
        events = ["s3:ObjectCreated:*"]
        self.s3.create_bucket(Bucket=self.bucket)
        self.s3.put_bucket_notification_configuration(
            Bucket=self.bucket,
            NotificationConfiguration={
                "TopicConfigurations": [{"TopicArn": topic_arn, "Events": events}]
            },
        )
        self.s3.create_bucket(Bucket=self.direct_bucket)
        self.notify_directly()
        self._route_through_eventbridge()
        self._bodies: dict[str, list[str]] = {}

    def notify_directly(self) -> None:
        """direct_bucket notifies the watcher's queue without SNS."""
        rule = {"QueueArn": self._arn(self.queue_url), "Events": ["s3:ObjectCreated:*"]}
        self.s3.put_bucket_notification_configuration(
            Bucket=self.direct_bucket,
            NotificationConfiguration={"QueueConfigurations": [rule]},
        )

    def _route_through_eventbridge(self) -> None:
        bucket = self.eventbridge_bucket
        self.s3.create_bucket(Bucket=bucket)
        self.s3.put_bucket_notification_configuration(
            Bucket=bucket, NotificationConfiguration={"EventBridgeConfiguration": {}}
        )
        eventbridge = self.moto.client("events")
        pattern = {
            "source": ["aws.s3"],
            "detail-type": ["Object Created"],
            "detail": {"bucket": {"name": [bucket]}},
        }
        eventbridge.put_rule(Name=f"{bucket}-created", EventPattern=json.dumps(pattern))
        eventbridge.put_targets(
            Rule=f"{bucket}-created", Targets=[{"Id": "watcher", "Arn": self._arn(self.queue_url)}]
        )

    def _arn(self, queue_url: str) -> str:
        attributes = self.sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])
        return str(attributes["Attributes"]["QueueArn"])

    def write(self, key: str, data: bytes) -> Written:
        response = self.s3.put_object(Bucket=self.bucket, Key=key, Body=data)
        return Written(key, len(data), etag=str(response["ETag"]).strip('"'))

    def _drain_capture(self) -> None:
        response = self.sqs.receive_message(
            QueueUrl=self.capture_url, MaxNumberOfMessages=10, WaitTimeSeconds=0
        )
        for message in response.get("Messages", []):
            body = message["Body"]
            for record in json.loads(body).get("Records", []):
                key = unquote_plus(record["s3"]["object"]["key"])
                self._bodies.setdefault(key, []).append(body)
            self.sqs.delete_message(
                QueueUrl=self.capture_url, ReceiptHandle=message["ReceiptHandle"]
            )

    def captured(self, key: str, count: int = 1, timeout: float = 20.0) -> list[Any]:
        def found() -> list[str]:
            self._drain_capture()
            return self._bodies.get(key, [])

        _wait(found, count, timeout, f"SQS bodies for {key}")
        return found()[:count]

    def redeliver(self, notification: Any) -> None:
        self.sqs.send_message(QueueUrl=self.queue_url, MessageBody=notification)


class PubSubChannel(Channel):
    source = "pubsub"
    scheme = "gs"
    bucket = "watch-gcs"

    def __init__(self, gcs: FakeGcsServer) -> None:
        assert gcs.pubsub is not None
        self.gcs = gcs
        self.emulator = gcs.pubsub
        gcs.create_bucket(self.bucket)
        self.client = gcs.client()
        self._subscriptions = 0
        self.subscription = self.new_subscription()
        self.capture = gcs.create_subscription("capture-sub")
        self._publisher = self.emulator.publisher()
        self._subscriber = self.emulator.subscriber()
        self._messages: dict[str, list[tuple[dict[str, str], bytes]]] = {}

    def new_subscription(self) -> str:
        """A fresh subscription for the watcher. The emulator keeps routing a share of the
        messages to the streams of a watcher that died (or even closed cleanly), to come
        back only after an ack deadline, so a restarted watcher gets a subscription of its
        own once the test that needed the old one is done."""
        self._subscriptions += 1
        path = f"projects/{self.gcs.project}/subscriptions/watcher-sub-{self._subscriptions}"
        self.emulator.subscriber().create_subscription(
            name=path, topic=self.gcs.topic_path, ack_deadline_seconds=10
        )
        return path

    def write(self, key: str, data: bytes) -> Written:
        blob = self.client.bucket(self.bucket).blob(key)
        blob.upload_from_string(data)
        assert blob.generation is not None
        return Written(key, len(data), generation=int(blob.generation))

    def _drain_capture(self) -> None:
        response = self._subscriber.pull(subscription=self.capture, max_messages=50, timeout=5)
        received = list(response.received_messages)
        for item in received:
            attributes = dict(item.message.attributes)
            if attributes.get("eventType") == "OBJECT_FINALIZE":
                self._messages.setdefault(attributes["objectId"], []).append(
                    (attributes, bytes(item.message.data))
                )
        if received:
            self._subscriber.acknowledge(
                subscription=self.capture, ack_ids=[m.ack_id for m in received]
            )

    def captured(self, key: str, count: int = 1, timeout: float = 20.0) -> list[Any]:
        def found() -> list[tuple[dict[str, str], bytes]]:
            if len(self._messages.get(key, [])) < count:
                self._drain_capture()
            return self._messages.get(key, [])

        _wait(found, count, timeout, f"Pub/Sub messages for {key}")
        return found()[:count]

    def redeliver(self, notification: Any) -> None:
        attributes, data = notification
        self._publisher.publish(self.gcs.topic_path, data, **attributes).result(timeout=10)


class SeaweedFsChannel(Channel):
    source = "seaweedfs-webhook"
    bucket = "watch-sw"

    def __init__(
        self, seaweedfs: SeaweedFS, proxy: RecordingProxy, watcher: WatcherProcess, token: str
    ) -> None:
        self.seaweedfs = seaweedfs
        self.proxy = proxy
        self.watcher = watcher
        self.token = token
        self.s3 = seaweedfs.s3_client()
        self.s3.create_bucket(Bucket=self.bucket)

    def write(self, key: str, data: bytes) -> Written:
        response = self.s3.put_object(Bucket=self.bucket, Key=key, Body=data)
        return Written(key, len(data), etag=str(response["ETag"]).strip('"'))

    def captured(self, key: str, count: int = 1, timeout: float = 20.0) -> list[Any]:
        path = f"/buckets/{self.bucket}/{key}"

        def found() -> list[bytes]:
            out = []
            seen: set[bytes] = set()
            for _, body in list(self.proxy.posts):
                doc = json.loads(body)
                ours = doc.get("key") == path and doc.get("event_type") in ("create", "update")
                if ours and body not in seen:
                    seen.add(body)
                    out.append(body)
            return out

        _wait(found, count, timeout, f"SeaweedFS webhook posts for {path}")
        return found()[:count]

    def redeliver(self, notification: Any) -> None:
        status, answer = self.watcher.post("/events/seaweedfs", notification, self.token)
        assert status == 200, (status, answer)


class MinioChannel(Channel):
    """No MinIO server here: objects go to moto's S3 (a bucket without notifications) and
    the test posts what MinIO would post."""

    source = "minio-webhook"
    bucket = "watch-minio"

    def __init__(self, moto: MotoServer, watcher: WatcherProcess, token: str) -> None:
        self.s3 = moto.client("s3")
        self.s3.create_bucket(Bucket=self.bucket)
        self.watcher = watcher
        self.token = token
        self._bodies: dict[str, list[bytes]] = {}
        self._senders: list[threading.Thread] = []
        self.failures: list[str] = []

    def write(self, key: str, data: bytes) -> Written:
        response = self.s3.put_object(Bucket=self.bucket, Key=key, Body=data)
        etag = str(response["ETag"]).strip('"')
        now = datetime.now(UTC)
        body = payloads.minio_body(
            key=key,
            bucket=self.bucket,
            size=len(data),
            etag=etag,
            sequencer=f"{time.time_ns():X}",
            time=now.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        )
        encoded = json.dumps(body).encode()
        self._bodies.setdefault(key, []).append(encoded)
        self._send_in_background(encoded)
        return Written(key, len(data), etag=etag)

    def _send_in_background(self, body: bytes) -> None:
        thread = threading.Thread(target=self._send_until_accepted, args=(body,), daemon=True)
        thread.start()
        self._senders.append(thread)

    def _send_until_accepted(self, body: bytes, timeout: float = 90.0) -> None:
        # MinIO keeps undelivered events in its queue store and retries them.
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                status, answer = self.watcher.post("/events/minio", body, self.token)
            except OSError:
                status, answer = 0, {}
            if 200 <= status < 300:
                return
            if 400 <= status < 500:
                self.failures.append(f"{status} {answer}")
                return
            time.sleep(0.5)
        self.failures.append("not accepted in time")

    def captured(self, key: str, count: int = 1, timeout: float = 20.0) -> list[Any]:
        _wait(lambda: self._bodies.get(key, []), count, timeout, f"MinIO posts for {key}")
        return self._bodies[key][:count]

    def redeliver(self, notification: Any) -> None:
        status, answer = self.watcher.post("/events/minio", notification, self.token)
        assert status == 200, (status, answer)

    def wait_sent(self, timeout: float = 60.0) -> None:
        for thread in self._senders:
            thread.join(timeout)
        assert not self.failures, self.failures
