"""The parsers turn each service's notification into StorageEvents: pure, no servers."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

import pytest

from stereo_operator.watcher.parsers import (
    MalformedEvent,
    UnsizedEvent,
    parse_pubsub_message,
    parse_s3_notification,
    parse_seaweedfs_event,
    read_pubsub_push,
)
from stereo_types.events import StorageEventKind
from stereo_types.layout import StorageRoot
from stereo_types.segment import CompletionSource

from . import payloads as p

ROOT = StorageRoot.parse("s3://films/ws")


def test_moto_put_record_decodes_the_key_and_finds_the_segment() -> None:
    body = json.dumps({"Records": [p.moto_record()]})
    parsed = parse_s3_notification(body)
    assert parsed.ignored == ()
    (event,) = parsed.events
    assert event.kind is StorageEventKind.CREATED
    assert event.uri == f"s3://films/{p.OUTPUT_KEY}"
    assert (event.bucket, event.key, event.size) == ("films", p.OUTPUT_KEY, 1000)
    assert event.etag == "336311a016184326ddbdd61edd4eeb52"
    assert event.sequencer is None  # moto sends none
    assert event.event_time == datetime(2026, 11, 25, 18, 34, 9, 943000, tzinfo=UTC)
    assert event.source is CompletionSource.SQS
    ref = event.segment_ref(ROOT)
    assert ref is not None
    assert (ref.videojob.namespace, ref.videojob.name, ref.videojob.uid, ref.index) == (
        "team-a",
        "film",
        p.UID,
        3,
    )


def test_plus_is_a_space_and_percent_escapes_decode() -> None:
    record = p.moto_record(key="other%2Fa+b%2Bc+%28copy%29.txt")
    (event,) = parse_s3_notification({"Records": [record]}).events
    assert event.key == "other/a b+c (copy).txt"
    assert event.uri == "s3://films/other/a b+c (copy).txt"
    assert event.segment_ref(ROOT) is None


def test_aws_record_keeps_the_sequencer() -> None:
    (event,) = parse_s3_notification({"Records": [p.aws_record()]}).events
    assert event.sequencer == "0066B2D4E1A8F3C7D2"


def test_multipart_completion_is_a_creation_and_moto_also_sends_put() -> None:
    bodies = [
        {"Records": [p.moto_record(event="ObjectCreated:Put", etag="34aa-1")]},
        {"Records": [p.moto_record(event="ObjectCreated:CompleteMultipartUpload", etag="34aa-1")]},
    ]
    events = [e for body in bodies for e in parse_s3_notification(body).events]
    assert [e.uri for e in events] == [f"s3://films/{p.OUTPUT_KEY}"] * 2
    assert {e.etag for e in events} == {"34aa-1"}


def test_test_event_is_ignored() -> None:
    parsed = parse_s3_notification(json.dumps(p.MOTO_TEST_EVENT))
    assert parsed.events == ()
    assert [i.reason for i in parsed.ignored] == ["test-event"]


def test_deletions_and_metadata_events_are_ignored() -> None:
    parsed = parse_s3_notification(
        {
            "Records": [
                p.moto_record(event="ObjectRemoved:Delete"),
                p.moto_record(event="ObjectCreated:PutRetention"),
                p.moto_record(event="ObjectCreated:Copy"),
            ]
        }
    )
    assert [i.reason for i in parsed.ignored] == ["not-a-creation", "not-a-write"]
    assert len(parsed.events) == 1


def test_sns_envelope_is_unwrapped() -> None:
    body = p.sns_envelope({"Records": [p.aws_record()]})
    (event,) = parse_s3_notification(json.dumps(body)).events
    assert event.key == p.OUTPUT_KEY


def test_minio_body_parses_as_minio_webhook() -> None:
    parsed = parse_s3_notification(
        json.dumps(p.minio_body()).encode(), CompletionSource.MINIO_WEBHOOK
    )
    (event,) = parsed.events
    assert event.source is CompletionSource.MINIO_WEBHOOK
    assert event.key == p.OUTPUT_KEY
    assert event.sequencer == "187B0C5D3A2E4F10"
    assert event.segment_ref(ROOT) is not None


def test_minio_key_with_spaces() -> None:
    body = p.minio_body(key="in box/my film.mp4")
    assert body["Records"][0]["s3"]["object"]["key"] == "in+box/my+film.mp4"
    (event,) = parse_s3_notification(body, CompletionSource.MINIO_WEBHOOK).events
    assert event.key == "in box/my film.mp4"


def test_bad_sequencer_is_dropped_not_fatal() -> None:
    (event,) = parse_s3_notification({"Records": [p.aws_record(sequencer="not-hex")]}).events
    assert event.sequencer is None


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"\xff\xfe", "not JSON"),
        ("not json", "not JSON"),
        ("[1, 2]", "not an object"),
        ('{"hello": "world"}', "no Records"),
        ('{"Records": [1]}', "Records[0] is not an object"),
        ('{"Records": [{"eventName": "ObjectCreated:Put"}]}', "missing s3.bucket.name"),
        (
            json.dumps({"Records": [p.moto_record(time="yesterday")]}),
            "not an RFC 3339 time",
        ),
        (
            json.dumps({"Records": [p.moto_record(time="2026-11-25T18:34:09")]}),
            "no time zone",
        ),
        (json.dumps({"Records": [p.moto_record(size=-1)]}), "negative"),
        (json.dumps({"Records": [p.moto_record(key="x" * 2000)]}), "key"),
    ],
)
def test_malformed_s3_bodies_say_why(body: str | bytes, reason: str) -> None:
    with pytest.raises(MalformedEvent, match=re.escape(reason)):
        parse_s3_notification(body)


def test_pubsub_finalize() -> None:
    (event,) = parse_pubsub_message(p.gcs_attributes(), p.gcs_data()).events
    assert event.uri == f"gs://films/{p.OUTPUT_KEY}"
    assert event.generation == 1795631663075867
    assert event.size == 20
    assert event.source is CompletionSource.PUBSUB
    # timeCreated (microseconds) rather than the attribute (seconds only in the emulator).
    assert event.event_time == datetime(2026, 11, 25, 18, 34, 23, 75862, tzinfo=UTC)
    assert event.segment_ref("gs://films/ws") is not None


def test_pubsub_other_event_types_and_formats_are_ignored() -> None:
    parsed = parse_pubsub_message(p.gcs_attributes(event="OBJECT_DELETE"), p.gcs_data())
    assert [i.reason for i in parsed.ignored] == ["not-a-creation"]
    attributes = {**p.gcs_attributes(), "payloadFormat": "JSON_API_V2"}
    parsed = parse_pubsub_message(attributes, b"")
    assert [i.reason for i in parsed.ignored] == ["unsupported-payload-format"]
    attributes.pop("payloadFormat")
    parsed = parse_pubsub_message(attributes, b"")
    assert [(i.reason, i.detail) for i in parsed.ignored] == [
        ("unsupported-payload-format", "(none)")
    ]


@pytest.mark.parametrize(
    ("attributes", "data", "reason"),
    [
        ({}, b"{}", "no eventType"),
        ({"eventType": "OBJECT_FINALIZE", "payloadFormat": "JSON_API_V1"}, b"{}", "bucketId"),
        (p.gcs_attributes(), b"<html>", "not JSON"),
        (p.gcs_attributes(), p.gcs_data(name="other"), "another object"),
        (
            {k: v for k, v in p.gcs_attributes().items() if k != "objectGeneration"},
            json.dumps({"name": p.OUTPUT_KEY, "size": "1"}).encode(),
            "no generation",
        ),
        (
            p.gcs_attributes(),
            json.dumps({"name": p.OUTPUT_KEY, "size": "lots"}).encode(),
            "not an integer",
        ),
    ],
)
def test_malformed_pubsub_messages(attributes: dict[str, str], data: bytes, reason: str) -> None:
    with pytest.raises(MalformedEvent, match=reason):
        parse_pubsub_message(attributes, data)


def test_seaweedfs_file_create() -> None:
    (event,) = parse_seaweedfs_event(json.dumps(p.seaweedfs_file_event())).events
    assert event.uri == f"s3://films/{p.OUTPUT_KEY}"
    assert event.size == 100
    assert event.etag == "aed563ecafb4bcc5654c597a421547b2"  # the S3 ETag, hex
    assert event.sequencer == f"{1795631621440434572:016X}"
    assert event.source is CompletionSource.SEAWEEDFS_WEBHOOK
    assert abs(event.event_time.timestamp() - 1795631621.440434572) < 1e-3


def test_seaweedfs_sequencer_orders_rewrites() -> None:
    first = parse_seaweedfs_event(p.seaweedfs_file_event(modified_ts_ns=1_795_631_621_000_000_000))
    second = parse_seaweedfs_event(
        p.seaweedfs_file_event(event="update", modified_ts_ns=1_795_631_630_000_000_000)
    )
    a, b = first.events[0].to_completion(), second.events[0].to_completion()
    from stereo_types.segment import compare_completions

    assert compare_completions(b, a) > 0


def test_seaweedfs_without_s3_etag_uses_md5() -> None:
    body = p.seaweedfs_file_event()
    del body["message"]["new_entry"]["extended"]
    (event,) = parse_seaweedfs_event(body).events
    assert event.etag == "aed563ecafb4bcc5654c597a421547b2"


def test_seaweedfs_rename_counts_at_the_new_path() -> None:
    body = p.seaweedfs_file_event(path=f"/buckets/films/{p.OUTPUT_KEY}", event="update")
    body["event_type"] = "rename"
    body["key"] = "/buckets/films/tmp/upload.part"
    (event,) = parse_seaweedfs_event(body).events
    assert event.key == p.OUTPUT_KEY


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (p.SEAWEEDFS_DIRECTORY_EVENT, "directory"),
        (p.SEAWEEDFS_BUCKET_EVENT, "directory"),
        (p.SEAWEEDFS_SYSTEM_EVENT, "not-an-object"),
        (p.seaweedfs_file_event(path="/etc/other/file.txt"), "outside-buckets"),
        ({**p.seaweedfs_file_event(), "event_type": "delete"}, "not-a-creation"),
        ({**p.seaweedfs_file_event(), "event_type": "truncate"}, "unknown-event-type"),
    ],
)
def test_seaweedfs_entries_that_are_not_objects_are_ignored(
    body: dict[str, object], reason: str
) -> None:
    parsed = parse_seaweedfs_event(body)
    assert parsed.events == ()
    assert [i.reason for i in parsed.ignored] == [reason]


def test_seaweedfs_other_buckets_dir() -> None:
    body = p.seaweedfs_file_event(path=f"/s3/films/{p.OUTPUT_KEY}")
    assert parse_seaweedfs_event(body, buckets_dir="/s3").events[0].key == p.OUTPUT_KEY
    assert parse_seaweedfs_event(body).ignored[0].reason == "outside-buckets"


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("{", "not JSON"),
        ({"key": "/buckets/films/x", "message": {}}, "missing event_type"),
        ({"event_type": "create", "message": {}}, "missing key"),
        ({"event_type": "create", "key": "/buckets/films/x", "message": "x"}, "message"),
        ({"event_type": "create", "key": "/buckets/films/x", "message": {}}, "new_entry"),
        (
            {"event_type": "create", "key": "/b/x", "message": {"new_entry": {"name": 3}}},
            "name is not a str",
        ),
        (
            {
                "event_type": "create",
                "key": "/buckets/films/x",
                "message": {"new_entry": {"name": "x", "attributes": {"file_size": "big"}}},
            },
            "file_size",
        ),
    ],
)
def test_malformed_seaweedfs_bodies(body: object, reason: str) -> None:
    with pytest.raises(MalformedEvent, match=reason):
        parse_seaweedfs_event(body if isinstance(body, str) else json.dumps(body))


# --- one bad record of many -------------------------------------------------------------------


def test_one_bad_record_costs_only_itself() -> None:
    good = p.aws_record()
    other = p.aws_record(
        key=p.ENCODED_KEY.replace("00003", "00004"), sequencer="0066B2D4E1A8F3C7D3"
    )
    bad_time = p.aws_record(time="yesterday")
    parsed = parse_s3_notification(
        {"Records": [good, {"eventName": "ObjectCreated:Put"}, bad_time, other, 7]}
    )
    assert [e.key for e in parsed.events] == [
        p.OUTPUT_KEY,
        p.OUTPUT_KEY.replace("00003", "00004"),
    ]
    errors = [b.error for b in parsed.malformed]
    assert len(errors) == 3
    assert "Records[1]: missing s3.bucket.name" in errors[0]
    assert "Records[2]: eventTime" in errors[1] and "RFC 3339" in errors[1]
    assert "Records[4] is not an object" in errors[2]
    assert parsed.records == 5


def test_a_bad_record_next_to_an_ignored_one_is_not_a_malformed_message() -> None:
    body = p.minio_body()
    body["Records"].append({"eventName": "s3:ObjectCreated:Put", "s3": {}})
    body["Records"][0]["eventName"] = "s3:ObjectRemoved:Delete"
    parsed = parse_s3_notification(body, CompletionSource.MINIO_WEBHOOK)
    assert (len(parsed.events), len(parsed.ignored), len(parsed.malformed)) == (0, 1, 1)


def test_every_record_bad_is_a_malformed_message() -> None:
    with pytest.raises(MalformedEvent, match=r"Records\[0\].*and 1 more unreadable records"):
        parse_s3_notification({"Records": [{"eventName": "ObjectCreated:Put"}, 3]})


# --- SNS control messages ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        ("SubscriptionConfirmation", "sns-subscription-confirmation"),
        ("UnsubscribeConfirmation", "sns-unsubscribe-confirmation"),
    ],
)
def test_sns_control_messages_are_recognised_not_malformed(kind: str, reason: str) -> None:
    parsed = parse_s3_notification(json.dumps(p.sns_control(kind)))
    assert parsed.events == () and parsed.malformed == ()
    (ignored,) = parsed.ignored
    assert (ignored.reason, ignored.detail) == (reason, p.SNS_TOPIC)
    assert "subscribe_url" in ignored.notice
    context = dict(ignored.context)
    assert context["topic"] == p.SNS_TOPIC
    assert context["subscribe_url"] == p.SNS_SUBSCRIBE_URL
    assert context["message_id"] == "165545c9-2a5c-472c-8df2-7ff2be2b3b1b"


def test_sns_notification_of_a_test_event_is_ignored() -> None:
    parsed = parse_s3_notification(json.dumps(p.sns_envelope(p.MOTO_TEST_EVENT)))
    assert [i.reason for i in parsed.ignored] == ["test-event"]


def test_unknown_sns_type_is_malformed() -> None:
    body = {**p.sns_control(), "Type": "Telegram"}
    with pytest.raises(MalformedEvent, match="no Records"):
        parse_s3_notification(body)


# --- S3 through EventBridge -------------------------------------------------------------------


def test_eventbridge_object_created_as_documented() -> None:
    (event,) = parse_s3_notification(json.dumps(p.eventbridge_object_created())).events
    assert event.source is CompletionSource.SQS
    assert (event.bucket, event.key, event.uri) == (
        "films",
        p.OUTPUT_KEY,
        f"s3://films/{p.OUTPUT_KEY}",
    )
    assert (event.size, event.etag, event.sequencer) == (
        1000,
        "336311a016184326ddbdd61edd4eeb52",
        "0066B2D4E1A8F3C7D2",
    )
    assert event.event_time == datetime(2026, 11, 25, 18, 34, 9, tzinfo=UTC)
    assert event.segment_ref(ROOT) is not None


def test_eventbridge_keys_are_not_url_decoded() -> None:
    body = p.eventbridge_object_created(key="in box/a+b%2Bc.mp4")
    (event,) = parse_s3_notification(body).events
    assert event.key == "in box/a+b%2Bc.mp4"


def test_eventbridge_as_moto_renders_it() -> None:
    """moto 5.2: eTag spelled as in S3 records, reason ObjectCreated."""
    body = p.eventbridge_object_created(reason="ObjectCreated")
    obj = body["detail"]["object"]
    obj["eTag"] = obj.pop("etag")
    (event,) = parse_s3_notification(body).events
    assert event.etag == "336311a016184326ddbdd61edd4eeb52"


def test_eventbridge_sequencer_beside_the_object_and_through_sns() -> None:
    body = p.eventbridge_object_created()
    body["detail"]["sequencer"] = body["detail"]["object"].pop("sequencer")
    envelope = p.sns_envelope(body)
    (event,) = parse_s3_notification(json.dumps(envelope)).events
    assert event.sequencer == "0066B2D4E1A8F3C7D2"


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"detail_type": "Object Deleted"}, "not-a-creation"),
        ({"detail_type": "Object Restore Completed"}, "not-a-creation"),
        (
            {"source": "aws.ec2", "detail_type": "EC2 Instance State-change Notification"},
            "not-s3-event",
        ),
    ],
)
def test_eventbridge_other_events_are_ignored(changes: dict[str, str], reason: str) -> None:
    parsed = parse_s3_notification(p.eventbridge_object_created(**changes))
    assert parsed.events == ()
    assert [i.reason for i in parsed.ignored] == [reason]


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda b: b["detail"].pop("bucket"), "missing detail.bucket.name"),
        (lambda b: b["detail"]["object"].pop("key"), "missing detail.object.key"),
        (lambda b: b.pop("time"), "missing time"),
        (lambda b: b.update(time="noon"), "RFC 3339"),
        (lambda b: b["detail"]["object"].update(size=-3), "negative"),
        (lambda b: b.update({"detail-type": 5}), "detail-type is not a str"),
    ],
)
def test_malformed_eventbridge_events(mutate: Any, reason: str) -> None:
    body = p.eventbridge_object_created()
    mutate(body)
    with pytest.raises(MalformedEvent, match=reason):
        parse_s3_notification(json.dumps(body))


# --- GCS without payload, Pub/Sub push --------------------------------------------------------


def test_pubsub_without_payload_is_an_unsized_event() -> None:
    (event,) = parse_pubsub_message(p.gcs_attributes_without_payload(), b"").events
    assert isinstance(event, UnsizedEvent)
    assert (event.uri, event.generation, event.size, event.etag) == (
        f"gs://films/{p.OUTPUT_KEY}",
        1795631663075867,
        0,
        None,
    )
    assert event.event_time == datetime(2026, 11, 25, 18, 34, 23, tzinfo=UTC)
    assert event.source is CompletionSource.PUBSUB
    assert event.segment_ref("gs://films/ws") is not None


@pytest.mark.parametrize("missing", ["bucketId", "objectId", "objectGeneration", "eventTime"])
def test_pubsub_without_payload_needs_its_attributes(missing: str) -> None:
    attributes = p.gcs_attributes_without_payload()
    del attributes[missing]
    with pytest.raises(MalformedEvent):
        parse_pubsub_message(attributes, b"")


def test_push_body_as_documented() -> None:
    body = p.pubsub_push_body(p.gcs_attributes(), p.gcs_data())
    push = read_pubsub_push(json.dumps(body).encode())
    assert push.subscription == "projects/films-project/subscriptions/watcher-push"
    assert push.message_id == "2070443601311540"
    assert push.attributes == p.gcs_attributes()
    assert push.data == p.gcs_data()
    (event,) = parse_pubsub_message(push.attributes, push.data).events
    assert event.generation == 1795631663075867


def test_push_body_without_data() -> None:
    body = p.pubsub_push_body(p.gcs_attributes_without_payload(), b"")
    assert "data" not in body["message"]
    push = read_pubsub_push(body)
    assert push.data == b""
    assert isinstance(parse_pubsub_message(push.attributes, push.data).events[0], UnsizedEvent)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"not json", "not JSON"),
        ({"subscription": "projects/p/subscriptions/s"}, "missing message"),
        ({"message": {"attributes": {"a": 1}}}, "map of strings"),
        ({"message": {"attributes": ["a"]}}, "map of strings"),
        ({"message": {"data": 5}}, "data is not a string"),
        ({"message": {"data": "***"}}, "not base64"),
    ],
)
def test_malformed_push_bodies(body: Any, reason: str) -> None:
    with pytest.raises(MalformedEvent, match=reason):
        read_pubsub_push(body if isinstance(body, bytes) else json.dumps(body))
