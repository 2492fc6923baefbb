"""Prometheus: the figures pushed to a Pushgateway and/or written to a textfile.

An inference Job lives for one segment, too short to be scraped, so the figures go where
Prometheus can find them after the pod is gone. The registry lives as long as the process:
a one-shot convert pushes one conversion, the HTTP server pushes its running totals. The
group is keyed by job and instance (the pod), so pods never overwrite each other.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import push_to_gateway, write_to_textfile

from stereo_infer.metrics.base import Conversion

_LABELS = ["engine", "format", "device"]
_SECONDS_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200)
_FPS_BUCKETS = (0.1, 0.25, 0.5, 1, 2, 5, 10, 25, 50, 100, 250, 500)
_PER_MB_BUCKETS = (0.1, 0.25, 0.5, 1, 2, 5, 10, 25, 50, 100, 250, 1000)
PUSH_TIMEOUT_S = 10.0


class PrometheusSink:
    name = "prometheus"

    def __init__(
        self, pushgateway: str | None, textfile: str | None, job: str, instance: str
    ) -> None:
        self.pushgateway = pushgateway
        self.textfile = textfile
        self.job = job
        self.instance = instance
        self.registry = CollectorRegistry()
        r = self.registry
        self.conversions = Counter(
            "stereo_infer_conversions", "Conversions finished", _LABELS, registry=r
        )
        self.frames = Counter(
            "stereo_infer_conversion_frames", "Frames converted", _LABELS, registry=r
        )
        self.input_bytes = Counter(
            "stereo_infer_conversion_input_bytes", "Bytes of input converted", _LABELS, registry=r
        )
        self.seconds = Histogram(
            "stereo_infer_conversion_seconds",
            "Wall time of a conversion",
            _LABELS,
            buckets=_SECONDS_BUCKETS,
            registry=r,
        )
        self.fps = Histogram(
            "stereo_infer_conversion_frames_per_second",
            "Frames per wall second of a conversion",
            _LABELS,
            buckets=_FPS_BUCKETS,
            registry=r,
        )
        self.per_mb = Histogram(
            "stereo_infer_conversion_seconds_per_megabyte",
            "Wall seconds per megabyte (10^6 bytes) of input",
            _LABELS,
            buckets=_PER_MB_BUCKETS,
            registry=r,
        )
        self.last = Gauge(
            "stereo_infer_last_conversion_timestamp_seconds",
            "When the last conversion finished (Unix time)",
            _LABELS,
            registry=r,
        )

    def record(self, conversion: Conversion) -> None:
        labels = conversion.labels
        self.conversions.labels(**labels).inc()
        self.frames.labels(**labels).inc(conversion.frames)
        self.input_bytes.labels(**labels).inc(conversion.input_bytes)
        self.seconds.labels(**labels).observe(conversion.wall_seconds)
        if conversion.frames_per_second is not None:
            self.fps.labels(**labels).observe(conversion.frames_per_second)
        if conversion.seconds_per_mb is not None:
            self.per_mb.labels(**labels).observe(conversion.seconds_per_mb)
        self.last.labels(**labels).set_to_current_time()
        if self.textfile is not None:
            write_to_textfile(self.textfile, self.registry)
        if self.pushgateway is not None:
            push_to_gateway(
                self.pushgateway,
                job=self.job,
                registry=self.registry,
                grouping_key={"instance": self.instance},
                timeout=PUSH_TIMEOUT_S,
            )
