"""Notification bodies as the real services produce them.

The moto, fake-gcs-server and SeaweedFS bodies were captured from the servers these tests
run (moto 5.2, fake-gcs-server in the wrapper wheel, weed 4.48), with keys and times
changed to fit the layout. The AWS and MinIO bodies follow the formats their documentation
describes (field for field, including what moto leaves out: sequencer, versionId).
"""

from __future__ import annotations

import json
from typing import Any

UID = "3f0c8a52-6a3e-4d7e-9d1b-2b7e0c9d4a11"
OUTPUT_KEY = f"ws/team-a/film/{UID}/segments/00003/output.mp4"
ENCODED_KEY = OUTPUT_KEY.replace("/", "%2F")  # moto encodes '/' too

MOTO_TEST_EVENT = {
    "Service": "Amazon S3",
    "Event": "s3:TestEvent",
    "Time": "2026-11-25T18:34:09.935Z",
    "Bucket": "films",
}


def moto_record(
    key: str = ENCODED_KEY,
    event: str = "ObjectCreated:Put",
    size: int = 1000,
    etag: str = "336311a016184326ddbdd61edd4eeb52",
    time: str = "2026-11-25T18:34:09.943Z",
    bucket: str = "films",
) -> dict[str, Any]:
    return {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "awsRegion": "us-east-1",
        "eventTime": time,
        "eventName": event,
        "s3": {
            "s3SchemaVersion": "1.0",
            "configurationId": "BTyTySFzF9lNMBaYOhRifktDiOVWLRmvw9KqFjPQdX0LWJQSvV",
            "bucket": {"name": bucket, "arn": f"arn:aws:s3:::{bucket}"},
            "object": {"key": key, "size": size, "eTag": etag},
        },
    }


def aws_record(sequencer: str = "0066B2D4E1A8F3C7D2", **kwargs: Any) -> dict[str, Any]:
    """An S3 record as AWS sends it: userIdentity, requestParameters, sequencer..."""
    record = moto_record(**kwargs)
    record.update(
        {
            "userIdentity": {"principalId": "AWS:AIDAEXAMPLE"},
            "requestParameters": {"sourceIPAddress": "10.0.0.1"},
            "responseElements": {"x-amz-request-id": "C3D13FE58DE4C810", "x-amz-id-2": "x"},
        }
    )
    record["s3"]["object"].update(
        {"versionId": "096fKKXTRTtl3on89fVO.nfljtsv6qko", "sequencer": sequencer}
    )
    record["s3"]["bucket"]["ownerIdentity"] = {"principalId": "A3NL1KOZZKExample"}
    return record


def sns_envelope(inner: dict[str, Any]) -> dict[str, Any]:
    return {
        "Type": "Notification",
        "MessageId": "d1a2b3c4-0000-4000-8000-000000000001",
        "TopicArn": "arn:aws:sns:us-east-1:123456789012:s3-events",
        "Subject": "Amazon S3 Notification",
        "Message": json.dumps(inner),
        "Timestamp": "2026-11-25T18:34:10.000Z",
    }


def minio_body(
    key: str = OUTPUT_KEY,
    event: str = "s3:ObjectCreated:Put",
    bucket: str = "films",
    size: int = 1000,
    etag: str = "336311a016184326ddbdd61edd4eeb52",
    sequencer: str = "187B0C5D3A2E4F10",
    time: str = "2026-11-25T18:34:09.943Z",
) -> dict[str, Any]:
    """What MinIO posts to a webhook target: EventName, Key and the S3 records."""
    from urllib.parse import quote_plus

    return {
        "EventName": event,
        "Key": f"{bucket}/{key}",
        "Records": [
            {
                "eventVersion": "2.0",
                "eventSource": "minio:s3",
                "awsRegion": "",
                "eventTime": time,
                "eventName": event,
                "userIdentity": {"principalId": "minioadmin"},
                "requestParameters": {
                    "principalId": "minioadmin",
                    "region": "",
                    "sourceIPAddress": "10.0.0.7",
                },
                "responseElements": {
                    "x-amz-id-2": "dd9025bab4ad464b049177c95eb6ebf374d3b3fd1af9251148b658df",
                    "x-amz-request-id": "187B0C5D3A2E4F10",
                    "x-minio-deployment-id": "5a0f6f3b-7c2e-4a51-9e5d-0c1f2e3d4b5a",
                    "x-minio-origin-endpoint": "http://10.0.0.7:9000",
                },
                "s3": {
                    "s3SchemaVersion": "1.0",
                    "configurationId": "Config",
                    "bucket": {
                        "name": bucket,
                        "ownerIdentity": {"principalId": "minioadmin"},
                        "arn": f"arn:aws:s3:::{bucket}",
                    },
                    "object": {
                        "key": quote_plus(key, safe="/"),
                        "size": size,
                        "eTag": etag,
                        "contentType": "video/mp4",
                        "userMetadata": {"content-type": "video/mp4"},
                        "sequencer": sequencer,
                    },
                },
                "source": {
                    "host": "10.0.0.9",
                    "port": "",
                    "userAgent": "MinIO (linux; amd64) minio-go/v7.0.70",
                },
            }
        ],
    }


def gcs_attributes(
    name: str = OUTPUT_KEY,
    generation: int = 1795631663075867,
    event: str = "OBJECT_FINALIZE",
    bucket: str = "films",
) -> dict[str, str]:
    return {
        "eventTime": "2026-11-25T18:34:23Z",
        "overwroteGeneration": "1795631663056103",
        "objectId": name,
        "eventType": event,
        "bucketId": bucket,
        "payloadFormat": "JSON_API_V1",
        "objectGeneration": str(generation),
    }


def gcs_data(
    name: str = OUTPUT_KEY,
    generation: int = 1795631663075867,
    size: int = 20,
    bucket: str = "films",
) -> bytes:
    return json.dumps(
        {
            "kind": "storage#object",
            "id": f"{bucket}/{name}#{generation}",
            "name": name,
            "bucket": bucket,
            "generation": str(generation),
            "contentType": "video/mp4",
            "timeCreated": "2026-11-25T18:34:23.075862Z",
            "updated": "2026-11-25T18:34:23.075866Z",
            "storageClass": "STANDARD",
            "size": str(size),
            "md5Hash": "uvHaDiuQZate3TbKAO0YJg==",
            "crc32c": "IRq/KA==",
        },
        separators=(",", ":"),
    ).encode()


def seaweedfs_file_event(
    path: str = f"/buckets/films/{OUTPUT_KEY}",
    event: str = "create",
    size: int = 100,
    modified_ts_ns: int = 1795631621440434572,
) -> dict[str, Any]:
    parent, _, name = path.rpartition("/")
    entry = {
        "name": name,
        "chunks": [
            {
                "size": size,
                "modified_ts_ns": modified_ts_ns,
                "e_tag": "rtVj7K+0vMVlTFl6QhVHsg==",
                "fid": {"volume_id": 1, "file_key": 1, "cookie": 4164867474},
                "is_compressed": True,
            }
        ],
        "attributes": {
            "file_size": size,
            "mtime": modified_ts_ns // 1_000_000_000,
            "file_mode": 432,
            "crtime": modified_ts_ns // 1_000_000_000,
            "mime": "video/mp4",
            "md5": "rtVj7K+0vMVlTFl6QhVHsg==",
            "inode": 15302558070334540577,
            "ctime": modified_ts_ns // 1_000_000_000,
            "atime": modified_ts_ns // 1_000_000_000,
        },
        "extended": {
            "Seaweed-X-Amz-ETag": "YWVkNTYzZWNhZmI0YmNjNTY1NGM1OTdhNDIxNTQ3YjI=",
            "Seaweed-X-Amz-Owner": "YWRtaW4=",
        },
    }
    message: dict[str, Any] = {
        "new_entry": entry,
        "delete_chunks": True,
        "new_parent_path": parent,
        "signatures": [-582181302],
    }
    if event == "update":
        message["old_entry"] = dict(entry)
    return {"event_type": event, "key": path, "message": message}


SEAWEEDFS_DIRECTORY_EVENT = {
    "event_type": "create",
    "key": "/buckets/films/ws",
    "message": {
        "new_entry": {
            "name": "ws",
            "is_directory": True,
            "attributes": {
                "mtime": 1795631621,
                "file_mode": 2147484153,
                "crtime": 1795631621,
                "inode": 5069560983522160819,
                "ctime": -62135596800,
                "mtime_ns": 441073812,
            },
        },
        "new_parent_path": "/buckets/films",
        "signatures": [-582181302],
    },
}

SEAWEEDFS_SYSTEM_EVENT = {
    "event_type": "create",
    "key": "/buckets/.system/owners/.complete",
    "message": {
        "new_entry": {
            "name": ".complete",
            "attributes": {"mtime": 1795631620, "file_mode": 504, "crtime": 1795631620},
        },
        "delete_chunks": True,
        "new_parent_path": "/buckets/.system/owners",
        "signatures": [-582181302],
    },
}

SEAWEEDFS_BUCKET_EVENT = {
    "event_type": "create",
    "key": "/buckets/films",
    "message": {
        "new_entry": {
            "name": "films",
            "is_directory": True,
            "attributes": {"mtime": 1795631621, "file_mode": 2147484159},
            "extended": {"Seaweed-X-Amz-Owner": "YWRtaW4="},
        },
        "delete_chunks": True,
        "new_parent_path": "/buckets",
        "signatures": [-582181302],
    },
}


# --- S3 through EventBridge, SNS control messages ------------------------------------------


def eventbridge_object_created(
    key: str = OUTPUT_KEY,
    bucket: str = "films",
    size: int = 1000,
    etag: str = "336311a016184326ddbdd61edd4eeb52",
    sequencer: str = "0066B2D4E1A8F3C7D2",
    time: str = "2026-11-25T18:34:09Z",
    detail_type: str = "Object Created",
    source: str = "aws.s3",
    reason: str = "PutObject",
) -> dict[str, Any]:
    """An S3 event as EventBridge delivers it to a rule's target (Amazon S3 user guide,
    "EventBridge event message structure"): the key is not URL-encoded, the ETag is
    ``etag``, the sequencer is in ``detail.object``, ``time`` has whole seconds."""
    return {
        "version": "0",
        "id": "2d4eba74-fd51-3966-4bfa-b013c9da8ff1",
        "detail-type": detail_type,
        "source": source,
        "account": "123456789012",
        "time": time,
        "region": "us-east-1",
        "resources": [f"arn:aws:s3:::{bucket}"],
        "detail": {
            "version": "0",
            "bucket": {"name": bucket},
            "object": {
                "key": key,
                "size": size,
                "etag": etag,
                "version-id": "IYV3p45BT0ac8hjHg1houSdS1a.Mro8e",
                "sequencer": sequencer,
            },
            "request-id": "N4N7GDK58NMKJ12R",
            "requester": "123456789012",
            "source-ip-address": "1.2.3.4",
            "reason": reason,
        },
    }


SNS_TOPIC = "arn:aws:sns:us-east-1:123456789012:s3-events"
SNS_SUBSCRIBE_URL = (
    "https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription"
    f"&TopicArn={SNS_TOPIC}&Token=2336412f37fb687f5d51e6e2425dacbba2b1e9a7e8c4"
)


def sns_control(kind: str = "SubscriptionConfirmation") -> dict[str, Any]:
    """An SNS SubscriptionConfirmation or UnsubscribeConfirmation as an SQS subscriber
    receives it (SNS developer guide, "HTTP/HTTPS subscription confirmation JSON format")."""
    what = (
        "To confirm the subscription, visit the SubscribeURL included in this message."
        if kind == "SubscriptionConfirmation"
        else "To cancel this operation and restore the subscription, visit the SubscribeURL "
        "included in this message."
    )
    return {
        "Type": kind,
        "MessageId": "165545c9-2a5c-472c-8df2-7ff2be2b3b1b",
        "Token": "2336412f37fb687f5d51e6e2425dacbba2b1e9a7e8c4",
        "TopicArn": SNS_TOPIC,
        "Message": f"You have chosen to change a subscription to the topic {SNS_TOPIC}.\n{what}",
        "SubscribeURL": SNS_SUBSCRIBE_URL,
        "Timestamp": "2026-11-25T18:34:04.751Z",
        "SignatureVersion": "1",
        "Signature": "EXAMPLEpH+DcEwjAPg8O9mY8dReBSwksfg2S7WKQcikcNKWLQjwu6A4VbeS0QHVCkhRS7fUQ",
        "SigningCertURL": "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-f3ecfb7224c7233fe7bb5f59f96de52f.pem",
    }


# --- GCS through Pub/Sub: payload format NONE, push requests --------------------------------


def gcs_attributes_without_payload(
    name: str = OUTPUT_KEY, generation: int = 1795631663075867, bucket: str = "films"
) -> dict[str, str]:
    """A notification configured with --payload-format=none: attributes only."""
    return {**gcs_attributes(name, generation, bucket=bucket), "payloadFormat": "NONE"}


def pubsub_push_body(
    attributes: dict[str, str],
    data: bytes,
    subscription: str = "projects/films-project/subscriptions/watcher-push",
    message_id: str = "2070443601311540",
) -> dict[str, Any]:
    """What Pub/Sub posts to a push endpoint (the default wrapped format)."""
    import base64

    message: dict[str, Any] = {
        "attributes": attributes,
        "messageId": message_id,
        "message_id": message_id,
        "publishTime": "2026-11-25T18:34:23.394Z",
        "publish_time": "2026-11-25T18:34:23.394Z",
    }
    if data:
        message["data"] = base64.b64encode(data).decode()
    return {"message": message, "subscription": subscription}
