"""Native notification formats to StorageEvent: pure functions, no I/O.

Each parser returns a Notification: the creation events it found, the records it
deliberately ignored (test events, deletions, directories, SNS control messages...) with a
reason, and the records it could not read when the others could (one bad record does not
cost a message's good ones). A body that is not a notification of the expected format, or
whose every record is unreadable, raises MalformedEvent; the caller acknowledges it
(queues) or answers 400 (webhooks), since delivering it again cannot help.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote_plus

from pydantic import ValidationError

from stereo_types.events import StorageEvent, StorageEventKind
from stereo_types.layout import join_uri
from stereo_types.segment import CompletionSource

# S3 event names (after "ObjectCreated:") that mean new object content.
S3_WRITE_EVENTS = frozenset({"Put", "Post", "Copy", "CompleteMultipartUpload"})
_HEX = re.compile(r"^[0-9A-Fa-f]{1,64}$")


class MalformedEvent(ValueError):
    """The body is not a notification of the expected format; the message says why."""


@dataclass(frozen=True, slots=True)
class Ignored:
    """A record deliberately skipped, and why."""

    reason: str
    detail: str = ""
    notice: str = ""
    """Set for a record someone has to act on (an SNS subscription to confirm): logged at
    WARNING with this message and the context fields."""
    context: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class BadRecord:
    """One unreadable record of a notification whose other records were read."""

    error: str


@dataclass(frozen=True, slots=True)
class Notification:
    """What one message or request carried."""

    events: tuple[StorageEvent, ...] = ()
    ignored: tuple[Ignored, ...] = ()
    malformed: tuple[BadRecord, ...] = ()

    @property
    def records(self) -> int:
        return len(self.events) + len(self.ignored) + len(self.malformed)


class UnsizedEvent(StorageEvent):
    """A creation whose notification did not carry the object's size or ETag (a Cloud
    Storage notification with payload format NONE). size is a placeholder 0: the applier
    reads the notified generation from storage before it records a completion."""


def _ignored(reason: str, detail: str = "") -> Notification:
    return Notification(ignored=(Ignored(reason, detail),))


def _load_json(body: str | bytes | Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(body, Mapping):
        return dict(body)
    try:
        doc = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MalformedEvent(f"body is not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise MalformedEvent(f"body is a JSON {type(doc).__name__}, not an object")
    return doc


def _field(doc: Mapping[str, Any], path: str, kind: type | tuple[type, ...], where: str) -> Any:
    node: Any = doc
    for part in path.split("."):
        if not isinstance(node, Mapping) or part not in node:
            raise MalformedEvent(f"{where}: missing {path}")
        node = node[part]
    if not isinstance(node, kind) or isinstance(node, bool):
        raise MalformedEvent(f"{where}: {path} is not a {getattr(kind, '__name__', kind)}")
    return node


def _time(value: str, where: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise MalformedEvent(f"{where}: {value!r} is not an RFC 3339 time") from None
    if parsed.tzinfo is None:
        raise MalformedEvent(f"{where}: time {value!r} has no time zone")
    return parsed


def _int(value: Any, where: str) -> int:
    # JSON APIs send 64-bit integers as strings (GCS size, generation).
    if isinstance(value, bool):
        raise MalformedEvent(f"{where}: {value!r} is not an integer")
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise MalformedEvent(f"{where}: {value!r} is not an integer") from None
    if number < 0:
        raise MalformedEvent(f"{where}: {number} is negative")
    return number


def _event(where: str, model: type[StorageEvent] = StorageEvent, **fields: Any) -> StorageEvent:
    try:
        return model(kind=StorageEventKind.CREATED, **fields)
    except ValidationError as exc:
        errors = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'event'}: {e['msg']}" for e in exc.errors()
        )
        raise MalformedEvent(f"{where}: {errors}") from None


# --- S3 (SQS, SNS to SQS, MinIO webhooks) ---------------------------------------------------


def _s3_record(record: Any, index: int, source: CompletionSource) -> StorageEvent | Ignored:
    where = f"Records[{index}]"
    if not isinstance(record, Mapping):
        raise MalformedEvent(f"{where} is not an object")
    name = _field(record, "eventName", str, where).removeprefix("s3:")
    category, _, action = name.partition(":")
    if category != "ObjectCreated":
        return Ignored("not-a-creation", name)
    if action not in S3_WRITE_EVENTS:
        return Ignored("not-a-write", name)  # MinIO: PutRetention, PutLegalHold, ...
    bucket = _field(record, "s3.bucket.name", str, where)
    # Keys are URL-encoded in form style: '+' is a space.
    key = unquote_plus(_field(record, "s3.object.key", str, where))
    obj = record["s3"]["object"]
    return _event(
        where,
        uri=join_uri("s3", bucket, key),
        bucket=bucket,
        key=key,
        size=_int(obj.get("size", 0), f"{where}: s3.object.size"),
        etag=_text(obj.get("eTag")),
        sequencer=_sequencer(obj.get("sequencer")),
        event_time=_time(_field(record, "eventTime", str, where), f"{where}: eventTime"),
        source=source,
    )


def _text(*values: Any) -> str | None:
    """The first non-empty string of values."""
    return next((v for v in values if isinstance(v, str) and v), None)


def _sequencer(value: Any) -> str | None:
    # A sequencer that is not hex cannot be ordered: the event still counts, by eventTime.
    return value if isinstance(value, str) and _HEX.match(value) else None


# SNS envelope types other than Notification: (ignored reason, what to do about it).
SNS_CONTROL_MESSAGES = {
    "SubscriptionConfirmation": (
        "sns-subscription-confirmation",
        "SNS asks to confirm a subscription of this queue to a topic: open subscribe_url "
        "(or run aws sns confirm-subscription with its Token); until then the topic's "
        "events do not arrive",
    ),
    "UnsubscribeConfirmation": (
        "sns-unsubscribe-confirmation",
        "an SNS subscription of this queue was deleted: the topic's events stop arriving; "
        "open subscribe_url to subscribe again",
    ),
}


def _sns_control(doc: Mapping[str, Any], kind: str) -> Notification:
    reason, notice = SNS_CONTROL_MESSAGES[kind]
    topic = _text(doc.get("TopicArn")) or "(unknown topic)"
    context = [("topic", topic)]
    for key, name in (("SubscribeURL", "subscribe_url"), ("MessageId", "message_id")):
        value = _text(doc.get(key))
        if value:
            context.append((name, value))
    return Notification(ignored=(Ignored(reason, topic, notice, tuple(context)),))


def _eventbridge_event(doc: Mapping[str, Any], source: CompletionSource) -> Notification:
    """An S3 event delivered by EventBridge (as the rule's target receives it, without an
    input transformer)."""
    where = "EventBridge event"
    detail_type = _field(doc, "detail-type", str, where)
    origin = doc.get("source")
    if origin != "aws.s3":
        return _ignored("not-s3-event", f"{origin}: {detail_type}")
    if detail_type != "Object Created":
        return _ignored("not-a-creation", detail_type)
    bucket = _field(doc, "detail.bucket.name", str, where)
    key = _field(doc, "detail.object.key", str, where)  # not URL-encoded in EventBridge
    detail = doc["detail"]
    obj = detail["object"]
    return Notification(
        events=(
            _event(
                where,
                uri=join_uri("s3", bucket, key),
                bucket=bucket,
                key=key,
                size=_int(obj.get("size", 0), f"{where}: detail.object.size"),
                etag=_text(obj.get("etag"), obj.get("eTag")),
                sequencer=_sequencer(obj.get("sequencer", detail.get("sequencer"))),
                event_time=_time(_field(doc, "time", str, where), f"{where}: time"),
                source=source,
            ),
        )
    )


def parse_s3_notification(
    body: str | bytes | Mapping[str, Any], source: CompletionSource = CompletionSource.SQS
) -> Notification:
    """An S3 event notification: an SQS message body (S3 directly, through SNS with or
    without raw delivery, or an EventBridge event), or the JSON MinIO posts to a webhook
    (the same records plus EventName and Key).

    Records that cannot be read are returned as malformed while the message's other records
    count; only a message without one readable record raises MalformedEvent.
    """
    doc = _load_json(body)
    envelope = doc.get("Type")
    if envelope == "Notification" and isinstance(doc.get("Message"), str):
        doc = _load_json(doc["Message"])  # S3 -> SNS -> SQS without raw delivery
    elif envelope in SNS_CONTROL_MESSAGES and isinstance(doc.get("TopicArn"), str):
        return _sns_control(doc, envelope)
    if doc.get("Event") == "s3:TestEvent":
        return _ignored("test-event", str(doc.get("Bucket", "")))
    if "detail-type" in doc and "detail" in doc:
        return _eventbridge_event(doc, source)
    records = doc.get("Records")
    if not isinstance(records, list):
        raise MalformedEvent("no Records list: not an S3 event notification")
    events: list[StorageEvent] = []
    ignored: list[Ignored] = []
    bad: list[BadRecord] = []
    for index, record in enumerate(records):
        try:
            parsed = _s3_record(record, index, source)
        except MalformedEvent as exc:
            bad.append(BadRecord(str(exc)))
            continue
        if isinstance(parsed, Ignored):
            ignored.append(parsed)
        else:
            events.append(parsed)
    if bad and not events and not ignored:
        more = f" (and {len(bad) - 1} more unreadable records)" if len(bad) > 1 else ""
        raise MalformedEvent(bad[0].error + more)
    return Notification(tuple(events), tuple(ignored), tuple(bad))


# --- GCS through Pub/Sub -----------------------------------------------------------------------


def parse_pubsub_message(attributes: Mapping[str, str], data: bytes | str) -> Notification:
    """A Cloud Storage notification delivered by Pub/Sub: attributes plus the object resource
    as data (payload format JSON_API_V1), or attributes alone (payload format NONE: the event
    is an UnsizedEvent, whose size the applier reads from storage)."""
    event_type = attributes.get("eventType")
    if not event_type:
        raise MalformedEvent("no eventType attribute: not a Cloud Storage notification")
    if event_type != "OBJECT_FINALIZE":
        return _ignored("not-a-creation", event_type)
    payload_format = attributes.get("payloadFormat", "")
    if payload_format == "NONE":
        return _pubsub_without_payload(attributes)
    if payload_format != "JSON_API_V1":
        return _ignored("unsupported-payload-format", payload_format or "(none)")
    bucket = attributes.get("bucketId")
    name = attributes.get("objectId")
    if not bucket or not name:
        raise MalformedEvent("OBJECT_FINALIZE without bucketId or objectId")
    obj = _load_json(data)
    where = f"gs://{bucket}/{name}"
    if obj.get("bucket", bucket) != bucket or obj.get("name", name) != name:
        raise MalformedEvent(f"{where}: data names another object")
    generation_value = attributes.get("objectGeneration") or obj.get("generation")
    if generation_value is None:
        raise MalformedEvent(f"{where}: no generation")
    generation = _int(generation_value, f"{where}: generation")
    # timeCreated is the finalize time of this generation, with sub-second precision.
    when = obj.get("timeCreated") or attributes.get("eventTime")
    if not isinstance(when, str):
        raise MalformedEvent(f"{where}: no eventTime")
    return Notification(
        events=(
            _event(
                where,
                uri=join_uri("gs", bucket, name),
                bucket=bucket,
                key=name,
                size=_int(obj.get("size", 0), f"{where}: size"),
                etag=_text(obj.get("etag")),
                generation=generation,
                event_time=_time(when, f"{where}: time"),
                source=CompletionSource.PUBSUB,
            ),
        )
    )


def _pubsub_without_payload(attributes: Mapping[str, str]) -> Notification:
    bucket = attributes.get("bucketId")
    name = attributes.get("objectId")
    if not bucket or not name:
        raise MalformedEvent("OBJECT_FINALIZE without bucketId or objectId")
    where = f"gs://{bucket}/{name}"
    generation_value = attributes.get("objectGeneration")
    if not generation_value:
        raise MalformedEvent(f"{where}: no objectGeneration attribute")
    when = attributes.get("eventTime")
    if not when:
        raise MalformedEvent(f"{where}: no eventTime attribute")
    return Notification(
        events=(
            _event(
                where,
                UnsizedEvent,
                uri=join_uri("gs", bucket, name),
                bucket=bucket,
                key=name,
                size=0,
                generation=_int(generation_value, f"{where}: objectGeneration"),
                event_time=_time(when, f"{where}: eventTime"),
                source=CompletionSource.PUBSUB,
            ),
        )
    )


@dataclass(frozen=True, slots=True)
class PushMessage:
    """The message of a Pub/Sub push request."""

    subscription: str
    message_id: str
    attributes: dict[str, str]
    data: bytes


def read_pubsub_push(body: str | bytes | Mapping[str, Any]) -> PushMessage:
    """The body Pub/Sub posts to a push endpoint (the default wrapped format):
    ``{"message": {"attributes", "data" (base64), "messageId", "publishTime"},
    "subscription"}``. MalformedEvent if it is not one; what the message itself says is
    parse_pubsub_message's business."""
    doc = _load_json(body)
    message = _field(doc, "message", Mapping, "push body")
    attributes = message.get("attributes") or {}
    if not isinstance(attributes, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in attributes.items()
    ):
        raise MalformedEvent("push body: message.attributes is not a map of strings")
    data = message.get("data") or ""
    if not isinstance(data, str):
        raise MalformedEvent("push body: message.data is not a string")
    try:
        raw = base64.b64decode(data, validate=True)
    except binascii.Error:
        raise MalformedEvent("push body: message.data is not base64") from None
    message_id = _text(message.get("messageId"), message.get("message_id")) or ""
    subscription = _text(doc.get("subscription")) or ""
    return PushMessage(subscription, message_id, dict(attributes), raw)


# --- SeaweedFS filer webhook -------------------------------------------------------------------

SEAWEEDFS_EVENT_TYPES = frozenset({"create", "update", "delete", "rename"})


def _b64text(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    try:
        return base64.b64decode(value, validate=True).decode("ascii")
    except (binascii.Error, UnicodeDecodeError):
        return None


def _seaweedfs_etag(entry: Mapping[str, Any], attributes: Mapping[str, Any]) -> str | None:
    # The S3 gateway keeps the S3 ETag (hex md5, or md5-N for multipart) as an extended
    # attribute; Go encodes []byte values as base64.
    extended = entry.get("extended")
    if isinstance(extended, Mapping):
        etag = _b64text(extended.get("Seaweed-X-Amz-ETag"))
        if etag:
            return etag.strip('"')
    md5 = attributes.get("md5")
    if isinstance(md5, str):
        try:
            return base64.b64decode(md5, validate=True).hex() or None
        except binascii.Error:
            return None
    return None


def _seaweedfs_stamp(entry: Mapping[str, Any], attributes: Mapping[str, Any]) -> int:
    """Nanoseconds of the entry's last write: chunk modification times, else mtime."""
    stamp = 0
    mtime = attributes.get("mtime")
    if isinstance(mtime, int) and not isinstance(mtime, bool) and mtime > 0:
        extra = attributes.get("mtime_ns")
        nanos = extra if isinstance(extra, int) and 0 <= extra < 1_000_000_000 else 0
        stamp = mtime * 1_000_000_000 + nanos
    chunks = entry.get("chunks")
    if isinstance(chunks, list):
        for chunk in chunks:
            value = chunk.get("modified_ts_ns") if isinstance(chunk, Mapping) else None
            if isinstance(value, int) and not isinstance(value, bool):
                stamp = max(stamp, value)
    return stamp


def parse_seaweedfs_event(
    body: str | bytes | Mapping[str, Any],
    buckets_dir: str = "/buckets",
    received_at: datetime | None = None,
) -> Notification:
    """One SeaweedFS filer webhook post: {"event_type", "key", "message": EventNotification}.

    Only files under <buckets_dir>/<bucket>/ count. Directories (implied folders, bucket
    creation) and deletions are ignored; a rename counts as a creation at its new path.
    SeaweedFS has no sequencer, so the entry's last write time in nanoseconds (the newest
    chunk's modified_ts_ns, else mtime) serves as one, in hex: it orders writes to one key.
    """
    doc = _load_json(body)
    event_type = _field(doc, "event_type", str, "event")
    key = _field(doc, "key", str, "event")
    message = _field(doc, "message", Mapping, "event")
    if event_type not in SEAWEEDFS_EVENT_TYPES:
        return _ignored("unknown-event-type", event_type)
    if event_type == "delete":
        return _ignored("not-a-creation", key)
    entry = message.get("new_entry")
    if not isinstance(entry, Mapping):
        raise MalformedEvent(f"{event_type} event for {key!r} without message.new_entry")
    if entry.get("is_directory"):
        return _ignored("directory", key)
    name = _field(entry, "name", str, "message.new_entry")
    parent = message.get("new_parent_path")
    if not isinstance(parent, str) or not parent:
        parent = key.rpartition("/")[0]
    path = f"{parent.rstrip('/')}/{name}"
    prefix = buckets_dir.rstrip("/") + "/"
    if not path.startswith(prefix):
        return _ignored("outside-buckets", path)
    bucket, _, object_key = path[len(prefix) :].partition("/")
    if not bucket or not object_key or bucket.startswith("."):
        return _ignored("not-an-object", path)  # bucket entries, .system metadata
    attributes = entry.get("attributes")
    attributes = attributes if isinstance(attributes, Mapping) else {}
    stamp = _seaweedfs_stamp(entry, attributes)
    if stamp:
        when = datetime.fromtimestamp(stamp / 1e9, UTC)
    else:
        when = received_at or datetime.now(UTC)
        stamp = int(when.timestamp() * 1e9)
    where = f"{event_type} {path}"
    return Notification(
        events=(
            _event(
                where,
                uri=join_uri("s3", bucket, object_key),
                bucket=bucket,
                key=object_key,
                size=_int(attributes.get("file_size", 0), f"{where}: file_size"),
                etag=_seaweedfs_etag(entry, attributes),
                sequencer=f"{stamp:016X}",
                event_time=when,
                source=CompletionSource.SEAWEEDFS_WEBHOOK,
            ),
        )
    )
