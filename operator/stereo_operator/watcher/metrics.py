"""Prometheus metrics of the watcher, in a registry of its own (served at /metrics)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

# Event-to-patch latency: storage's event time to the status patch being accepted.
LATENCY_BUCKETS = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    300.0,
)


class WatcherMetrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.received = Counter(
            "stereo_watcher_events_received",
            "Notification records received (events and ignored records), by source.",
            ["source"],
            registry=r,
        )
        self.applied = Counter(
            "stereo_watcher_events_applied",
            "Events that set a Segment's status.completion.",
            ["source"],
            registry=r,
        )
        self.duplicates = Counter(
            "stereo_watcher_events_duplicate",
            "Events reporting the completion already recorded (redeliveries, replays).",
            ["source"],
            registry=r,
        )
        self.ignored = Counter(
            "stereo_watcher_events_ignored",
            "Records acknowledged without a change, by reason (older-than-recorded, "
            "not-segment-output, videojob-uid-mismatch, segment-not-found, ...).",
            ["source", "reason"],
            registry=r,
        )
        self.errors = Counter(
            "stereo_watcher_errors",
            "Failures by reason: malformed bodies, unauthorized requests, API server "
            "unavailable (per attempt), rejected patches, events released for redelivery.",
            ["source", "reason"],
            registry=r,
        )
        self.latency = Histogram(
            "stereo_watcher_event_to_patch_seconds",
            "From the storage event time to the accepted status patch.",
            ["source"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.inflight = Gauge(
            "stereo_watcher_events_inflight",
            "Events being applied now.",
            registry=r,
        )
        self.source_up = Gauge(
            "stereo_watcher_source_connected",
            "1 while an event source is connected (receiving or listening).",
            ["source", "name"],
            registry=r,
        )
        self.spooled = Gauge(
            "stereo_watcher_spooled_events",
            "Webhook events kept in the spool directory, waiting to be applied.",
            registry=r,
        )
        self.api_up = Gauge(
            "stereo_watcher_api_server_reachable",
            "1 if the API server answered within the readiness window.",
            registry=r,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
