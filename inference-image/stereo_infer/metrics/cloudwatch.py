"""CloudWatch: the figures as custom metrics (PutMetricData), dimensioned by engine, format
and device."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from stereo_infer.metrics.base import Conversion

_DIMENSION_NAMES = {"engine": "Engine", "format": "Format", "device": "Device"}


def metric_data(conversion: Conversion, at: datetime) -> list[dict[str, Any]]:
    """The MetricData of one conversion (figures it cannot tell are left out)."""
    dimensions = [
        {"Name": _DIMENSION_NAMES[key], "Value": value} for key, value in conversion.labels.items()
    ]
    figures: list[tuple[str, float | None, str]] = [
        ("ConversionSeconds", conversion.wall_seconds, "Seconds"),
        ("ConversionFrames", float(conversion.frames), "Count"),
        ("ConversionInputBytes", float(conversion.input_bytes), "Bytes"),
        ("ConversionFramesPerSecond", conversion.frames_per_second, "Count/Second"),
        ("ConversionSecondsPerMegabyte", conversion.seconds_per_mb, "None"),
    ]
    return [
        {
            "MetricName": name,
            "Dimensions": dimensions,
            "Timestamp": at,
            "Value": value,
            "Unit": unit,
        }
        for name, value, unit in figures
        if value is not None
    ]


class CloudWatchSink:
    name = "cloudwatch"

    def __init__(
        self, namespace: str, region: str, endpoint: str | None = None, client: Any = None
    ) -> None:
        if client is None:
            import boto3
            from botocore.config import Config

            # Short timeouts: a conversion waits for its report, and must not wait long.
            bounded = Config(connect_timeout=5, read_timeout=10, retries={"max_attempts": 2})
            client = boto3.client(
                "cloudwatch", region_name=region, endpoint_url=endpoint, config=bounded
            )
        self.client = client
        self.namespace = namespace

    def record(self, conversion: Conversion) -> None:
        data = metric_data(conversion, datetime.now(UTC))
        self.client.put_metric_data(Namespace=self.namespace, MetricData=data)
