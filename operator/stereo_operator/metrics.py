"""Prometheus metrics.

Counters and histograms are recorded where things happen; the gauges (segments by phase,
in-flight Jobs, VideoJobs by phase) are computed from the kopf indexes at scrape time, so they
are right after a restart without any bookkeeping.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any

from prometheus_client import Counter, Histogram, start_http_server
from prometheus_client.core import REGISTRY, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from stereo_types.segment import SegmentConversion, SegmentSpec

log = logging.getLogger(__name__)

API_REQUESTS = Counter(
    "stereo_operator_api_requests",
    "Kubernetes API requests the operator made (watches excluded), by verb and resource",
    ["verb", "resource", "code"],
)
RETRIES = Counter("stereo_segment_retries", "Failed segment attempts that will be retried")
ATTEMPT_FAILURES = Counter(
    "stereo_segment_attempt_failures", "Failed segment attempts, by reason", ["reason"]
)
JOBS_LAUNCHED = Counter("stereo_inference_jobs_launched", "Inference Jobs the operator created")
SEGMENT_DURATION = Histogram(
    "stereo_segment_duration_seconds",
    "From a segment's first attempt to its output in storage",
    buckets=(1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200),
)
STORAGE_EVENT_LAG = Histogram(
    "stereo_storage_event_lag_seconds",
    "From an output's write (eventTime) to its completion being recorded (recordedAt)",
    ["source"],
    buckets=(0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600),
)
# Conversion figures of completed segments, by output format and engine: both small enums, so
# the label sets stay bounded however many segments and VideoJobs there are.
_CONVERSION_LABELS = ["format", "engine"]
CONVERSION_SECONDS = Histogram(
    "stereo_segment_conversion_seconds",
    "Wall time of the attempt that converted a segment, from its start to its output",
    _CONVERSION_LABELS,
    buckets=(1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200),
)
CONVERSION_FPS = Histogram(
    "stereo_segment_conversion_frames_per_second",
    "Frames per wall second of the attempt that converted a segment",
    _CONVERSION_LABELS,
    buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 25, 50, 100, 250, 500),
)
CONVERSION_SECONDS_PER_MB = Histogram(
    "stereo_segment_conversion_seconds_per_megabyte",
    "Wall seconds per megabyte (10^6 bytes) of segment input",
    _CONVERSION_LABELS,
    buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 25, 50, 100, 250, 1000),
)
CONVERSION_FRAMES = Counter(
    "stereo_segment_conversion_frames", "Frames of converted segments", _CONVERSION_LABELS
)
RECONCILE_SECONDS = Histogram(
    "stereo_reconcile_seconds", "Duration of one reconcile tick of one VideoJob"
)
RECONCILE_ERRORS = Counter("stereo_reconcile_errors", "Reconcile ticks that raised")


def observe_completion(
    source: str, event_time: datetime, recorded_at: datetime, start_time: datetime | None
) -> None:
    STORAGE_EVENT_LAG.labels(source=source).observe(
        max(0.0, (recorded_at - event_time).total_seconds())
    )
    if start_time is not None:
        SEGMENT_DURATION.observe(max(0.0, (event_time - start_time).total_seconds()))


def observe_conversion(spec: SegmentSpec, wire: Any) -> None:
    """A segment's conversion figures, as recorded in its status (camelCase wire form)."""
    figures = SegmentConversion.model_validate(wire)
    labels = {"format": spec.format.value, "engine": spec.backend.engine.value}
    CONVERSION_SECONDS.labels(**labels).observe(figures.wall_seconds)
    CONVERSION_FRAMES.labels(**labels).inc(figures.frames)
    if figures.frames_per_second is not None:
        CONVERSION_FPS.labels(**labels).observe(figures.frames_per_second)
    if figures.seconds_per_mb is not None:
        CONVERSION_SECONDS_PER_MB.labels(**labels).observe(figures.seconds_per_mb)


# name -> (help, {label values: value})
GaugeSnapshot = Mapping[str, tuple[str, list[str], Mapping[tuple[str, ...], float]]]


class IndexCollector(Collector):
    """Gauges from a snapshot function (run on the operator's event loop by the caller)."""

    def __init__(self, snapshot: Callable[[], GaugeSnapshot]) -> None:
        self._snapshot = snapshot

    def describe(self) -> Iterable[Metric]:
        # Without describe(), registering calls collect(): on the event loop, whose snapshot
        # it would then wait for.
        return []

    def collect(self) -> Iterable[Metric]:
        try:
            snapshot = self._snapshot()
        except Exception:  # a scrape must never take the exporter down
            log.exception("cannot compute the index gauges")
            return
        for name, (help_text, label_names, values) in snapshot.items():
            family = GaugeMetricFamily(name, help_text, labels=label_names)
            for label_values, value in values.items():
                family.add_metric(list(label_values), value)
            yield family


_collector: IndexCollector | None = None


def serve(port: int, snapshot: Callable[[], GaugeSnapshot]) -> None:
    """Expose /metrics on port (0: not at all)."""
    global _collector
    if _collector is None:
        _collector = IndexCollector(snapshot)
        REGISTRY.register(_collector)
    if port:
        start_http_server(port)
        log.info("metrics on port %d", port)
