"""A VideoJob of 2,000 segments on the real local API server, with the real operator process.

What is real: the operator, the API server, etcd, the Job controller, the scheduler, the
garbage collector. What the test plays: the kubelet of one extra Node (tests/operator/
scale.py), which leaves behind what each pod's `stereo-infer` would (the split's plan of
2,000 one-frame segments, each segment's output, the final file) and reports the pod
Succeeded. Running 2,000 real ffmpeg processes is the media tests' business, not this one's;
this one proves what 2,000 segments do to the operator: every Segment created under its
deterministic name at a bounded rate, the in-flight cap never exceeded, a VideoJob status
that stays small, a bounded number of API requests per segment and every completion counted
exactly once.
"""

from __future__ import annotations

import bisect
import json
import re
import uuid

import pytest

from stereo_types.names import segment_name
from tests.operator.harness import Harness
from tests.operator.scale import FakeNode, operator_config, run_scale
from tests.servers import free_port

pytest_plugins = ["tests.operator.harness"]
pytestmark = pytest.mark.cluster

SEGMENTS = 2000
MAX_INFLIGHT = 40
CREATES_PER_TICK = 250
RECONCILE_SECONDS = 1.0
STATUS_BYTES_BOUND = 4096


# About 5 minutes on two busy cores; the suite's default limit is 10.
@pytest.mark.timeout(1200)
def test_a_videojob_of_2000_segments(harness: Harness) -> None:
    node = FakeNode(harness.api, f"scale-{uuid.uuid4().hex[:6]}", SEGMENTS).start()
    metrics_port = free_port()
    try:
        harness.start_operator(
            "--standalone",
            f"--metrics-port={metrics_port}",
            **operator_config(node, MAX_INFLIGHT, CREATES_PER_TICK),
        )
        run = run_scale(
            harness, node, "big", parallelism=200, metrics_port=metrics_port, timeout=900
        )
    finally:
        node.stop()
    figures = run.figures()
    print(json.dumps(figures, indent=1))
    assert not node.errors, node.errors[:5]
    status = run.videojob["status"]
    assert status["phase"] == "Succeeded", status

    # Every Segment, under its deterministic name, completed once on its first attempt.
    segments = harness.segments("big")
    assert [s["metadata"]["name"] for s in segments] == [
        segment_name("big", i) for i in range(SEGMENTS)
    ]
    assert {s["status"]["phase"] for s in segments} == {"Completed"}
    assert {s["status"]["attempts"] for s in segments} == {1}
    assert all(s["status"]["completion"]["uri"] == s["spec"]["outputUri"] for s in segments)
    assert status["segmentsTotal"] == status["segmentsCompleted"] == SEGMENTS
    assert status["progress"] == f"{SEGMENTS}/{SEGMENTS}"

    # The cluster-wide cap binds (parallelism is 200) and is never exceeded, as the API saw.
    assert run.peak_inflight == MAX_INFLIGHT, figures

    # The status holds counters and conditions, never per-segment detail.
    assert run.max_status_bytes <= STATUS_BYTES_BOUND, figures
    assert len(status["conditions"]) <= 4
    assert not [k for k, v in status.items() if isinstance(v, list) and k != "conditions"]

    # API requests: exactly one create per Segment and per Job, two status patches per
    # Segment (started, completed: so no completion was counted twice), the VideoJob's status
    # at most once per tick, and next to nothing else (no list calls per tick).
    writes = run.writes()
    assert writes["create segments"] == SEGMENTS, figures
    assert writes["create jobs"] == SEGMENTS + 2, figures
    assert writes["patch segments/status"] == 2 * SEGMENTS, figures
    assert writes["patch videojobs/status"] <= 5 + 2 * SEGMENTS, figures
    assert figures["operator_requests_per_segment"] < 5.0, figures
    assert sum(run.reads().values()) <= 50, figures
    # One completion per segment in the operator's own count too.
    lag = re.search(
        r'stereo_storage_event_lag_seconds_count\{source="reconcile"\} (\S+)', run.metrics
    )
    assert lag is not None and float(lag.group(1)) == SEGMENTS, lag
    assert f"stereo_inference_jobs_launched_total {SEGMENTS}.0" in run.metrics

    # Creation is rate-limited: at most CREATES_PER_TICK per tick and ticks at least
    # RECONCILE_SECONDS apart, so no window of that length holds more than two ticks' worth,
    # and the creates spread over at least (ticks needed - 2) intervals.
    times = run.segment_create_times()
    busiest = max(
        bisect.bisect_left(times, start + RECONCILE_SECONDS) - i for i, start in enumerate(times)
    )
    assert busiest <= 2 * CREATES_PER_TICK, figures
    ticks_needed = -(-SEGMENTS // CREATES_PER_TICK)
    assert times[-1] - times[0] >= (ticks_needed - 2) * RECONCILE_SECONDS, figures
