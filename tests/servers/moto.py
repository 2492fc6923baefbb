"""moto in server mode: S3 and SQS (and every other AWS API moto fakes) on one port."""

from __future__ import annotations

import json
import sys
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .process import HOST, ManagedServer, free_port, http_status


@dataclass(frozen=True)
class NotifiedBucket:
    bucket: str
    queue_url: str
    queue_arn: str


class MotoServer(ManagedServer):
    name = "moto"
    region = "us-east-1"
    access_key = "testing"
    secret_key = "testing"
    account_id = "123456789012"  # moto's default account

    def __init__(self, *, ready_timeout: float | None = None) -> None:
        super().__init__(ready_timeout=ready_timeout)
        self.port = 0

    @property
    def endpoint_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def env(self) -> dict[str, str]:
        return {
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_ENDPOINT_URL": self.endpoint_url,
        }

    def client(self, service: str) -> Any:
        import boto3

        return boto3.client(
            service,
            endpoint_url=self.endpoint_url,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name=self.region,
        )

    def create_bucket_with_queue(
        self,
        bucket: str,
        queue: str,
        *,
        events: Sequence[str] = ("s3:ObjectCreated:*",),
        key_prefix: str | None = None,
    ) -> NotifiedBucket:
        """A bucket whose notification configuration sends ``events`` to a new queue.

        As on AWS, S3 first posts an ``s3:TestEvent`` to the queue.
        """
        s3, sqs = self.client("s3"), self.client("sqs")
        s3.create_bucket(Bucket=bucket)
        queue_url = sqs.create_queue(QueueName=queue)["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])
        queue_arn = arn["Attributes"]["QueueArn"]
        rule: dict[str, Any] = {"QueueArn": queue_arn, "Events": list(events)}
        if key_prefix:
            rule["Filter"] = {"Key": {"FilterRules": [{"Name": "prefix", "Value": key_prefix}]}}
        s3.put_bucket_notification_configuration(
            Bucket=bucket, NotificationConfiguration={"QueueConfigurations": [rule]}
        )
        return NotifiedBucket(bucket, queue_url, queue_arn)

    def reset(self) -> None:
        """Forget every bucket, queue and object."""
        request = urllib.request.Request(f"{self.endpoint_url}/moto-api/reset", method="POST")
        with urllib.request.urlopen(request, timeout=10) as response:
            json.loads(response.read() or b"{}")

    def _allocate_ports(self) -> None:
        self.port = free_port()

    def _command(self) -> list[str]:
        return [sys.executable, "-m", "moto.server", "-H", HOST, "-p", str(self.port)]

    def _is_ready(self) -> bool:
        return http_status(f"{self.endpoint_url}/moto-api/") == 200
