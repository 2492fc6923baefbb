"""Cloud Monitoring: the figures as custom metrics (CreateTimeSeries), one gauge point each,
labelled by engine, format and device, on the `global` monitored resource."""

from __future__ import annotations

import importlib
from datetime import UTC, datetime
from typing import Any

from stereo_infer.metrics.base import Conversion

# Imported by name: the package is typed, and mypy seeing it would make the rest of the
# untyped google.cloud namespace (pubsub_v1) an error elsewhere.
monitoring_v3: Any = importlib.import_module("google.cloud.monitoring_v3")

METRIC_DOMAIN = "custom.googleapis.com"


def time_series(conversion: Conversion, project: str, namespace: str, at: datetime) -> list[Any]:
    """The series of one conversion (figures it cannot tell are left out)."""
    seconds = int(at.timestamp())
    interval = monitoring_v3.TimeInterval(
        end_time={"seconds": seconds, "nanos": int((at.timestamp() - seconds) * 1e9)}
    )
    figures: list[tuple[str, float | None]] = [
        ("conversion_seconds", conversion.wall_seconds),
        ("conversion_frames", float(conversion.frames)),
        ("conversion_input_bytes", float(conversion.input_bytes)),
        ("conversion_frames_per_second", conversion.frames_per_second),
        ("conversion_seconds_per_megabyte", conversion.seconds_per_mb),
    ]
    series = []
    for name, value in figures:
        if value is None:
            continue
        one = monitoring_v3.TimeSeries()
        one.metric.type = f"{METRIC_DOMAIN}/{namespace}/{name}"
        one.metric.labels.update(conversion.labels)
        one.resource.type = "global"
        one.resource.labels["project_id"] = project
        one.points = [monitoring_v3.Point(interval=interval, value={"double_value": value})]
        series.append(one)
    return series


class CloudMonitoringSink:
    name = "cloudmonitoring"

    def __init__(self, project: str, namespace: str, client: Any = None) -> None:
        self.client = client
        self.project = project
        self.namespace = namespace

    def record(self, conversion: Conversion) -> None:
        series = time_series(conversion, self.project, self.namespace, datetime.now(UTC))
        if self.client is None:  # on first use: finding credentials may fail, and is reported
            self.client = monitoring_v3.MetricServiceClient()
        self.client.create_time_series(name=f"projects/{self.project}", time_series=series)
