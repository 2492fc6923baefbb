"""The operator on the real local cluster: a VideoJob from apply to a playable stereo file."""

from __future__ import annotations

import collections
import ipaddress
import socket
import threading
import time
import urllib.request

import pytest
from kubernetes import client

from tests.operator.harness import (
    Harness,
    active,
    audio_duration,
    file_path,
    frame_count,
    operator_requests,
)
from tests.servers.web import WebServer

# The fixtures (cluster_access, harness, media) live in the harness module.
pytest_plugins = ["tests.operator.harness"]
pytestmark = pytest.mark.cluster


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_happy_path_with_the_stub_backend(harness: Harness, media: dict) -> None:
    source = media["6s"]
    metrics_port, liveness_port = free_port(), free_port()
    harness.start_operator(
        "--standalone",
        f"--metrics-port={metrics_port}",
        f"--liveness=http://127.0.0.1:{liveness_port}/healthz",
    )
    harness.set_faults("film", {"convert": {"*": {"*": "sleep:1"}}})
    harness.create_videojob("film", source, parallelism=2)

    # Parallelism, watched from the API while it runs.
    peak = 0
    stop = threading.Event()

    def watch() -> None:
        nonlocal peak
        while not stop.is_set():
            running = [j for j in harness.jobs("inference") if active(j)]
            peak = max(peak, len(running))
            time.sleep(0.1)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        vj = harness.wait_phase("film", "Succeeded", "Failed", timeout=120)
    finally:
        stop.set()
        watcher.join(5)
    status = vj["status"]
    assert status["phase"] == "Succeeded", status
    assert peak == 2, f"at most parallelism=2 inference Jobs at once, saw {peak}"

    total = status["segmentsTotal"]
    assert total == 6
    assert status["segmentsCompleted"] == total
    assert status["progress"] == f"{total}/{total}"
    assert status["completionTime"] >= status["startTime"]
    assert {c["type"]: c["status"] for c in status["conditions"]}["Succeeded"] == "True"

    # The output: every frame of the source, and its audio within one frame.
    output = file_path(status["outputUri"])
    assert output.exists()
    assert frame_count(output) == frame_count(source)
    assert abs(audio_duration(output) - audio_duration(source)) <= 1 / 24 + 1e-6

    # Segments: one attempt each, completed through the operator's own storage check (no
    # watcher in this test), Jobs named per attempt and owned by their Segment.
    segments = harness.segments("film")
    assert [s["status"]["phase"] for s in segments] == ["Completed"] * total
    assert all(s["status"]["attempts"] == 1 for s in segments)
    assert all(s["status"]["completion"]["source"] == "reconcile" for s in segments)
    jobs = harness.jobs("inference")
    assert len(jobs) == total
    owners = {j.metadata.owner_references[0].name for j in jobs}
    assert owners == {s["metadata"]["name"] for s in segments}

    # Events on phase changes.
    reasons = [
        e.reason
        for e in client.CoreV1Api(harness.api).list_namespaced_event(harness.namespace).items
        if e.involved_object.kind == "VideoJob"
    ]
    for phase in ("Splitting", "Running", "Assembling", "Succeeded"):
        assert phase in reasons

    # Liveness and metrics endpoints.
    with urllib.request.urlopen(f"http://127.0.0.1:{liveness_port}/healthz", timeout=5) as r:
        assert r.status == 200
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as r:
        scraped = r.read().decode()
    assert 'stereo_segments{phase="Completed"} 6.0' in scraped
    assert "stereo_inference_jobs_launched_total 6.0" in scraped
    assert 'stereo_storage_event_lag_seconds_count{source="reconcile"} 6.0' in scraped
    assert "stereo_segment_duration_seconds_count 6.0" in scraped

    # API requests the operator made per segment, from the API server's audit log.
    time.sleep(1.5)  # the audit log is written asynchronously
    requests = operator_requests(harness.access.audit_log, harness.namespace)
    # The liveness heartbeat (a Lease renewal every few seconds) is per time, not per VideoJob.
    requests = [r for r in requests if r["objectRef"]["resource"] != "leases"]
    writes = [r for r in requests if r["verb"] in ("create", "update", "patch", "delete")]
    by_kind = collections.Counter(
        f"{r['verb']} {r['objectRef']['resource']}"
        + (f"/{r['objectRef']['subresource']}" if r["objectRef"].get("subresource") else "")
        for r in writes
    )
    print(f"operator writes for {total} segments: {dict(by_kind)}")
    print(f"all operator requests in the namespace: {len(requests)}")
    assert by_kind["create jobs"] == total + 2  # split, one per segment, assemble
    assert by_kind["create segments"] == total
    assert by_kind["patch segments/status"] == 2 * total  # started, completed
    # Per segment: create it, create its Job, record the start, record the completion. The
    # VideoJob's status moves with its phases and its counters: at most once per phase and
    # once per segment start and completion (ticks often batch several changes into one).
    assert by_kind["patch videojobs/status"] <= 5 + 2 * total, dict(by_kind)
    # The rest is per VideoJob: split/assemble Jobs, kopf's finalizer, phase Events.
    per_videojob = len(writes) - 4 * total - by_kind["patch videojobs/status"]
    assert per_videojob <= 10, dict(by_kind)


def pod_reachable_host(api: client.ApiClient) -> str:
    """A node's bridge gateway: a host address that pods in their own network reach."""
    for node in client.CoreV1Api(api).list_node().items:
        if node.spec.pod_cidr and not node.spec.taints:
            return str(ipaddress.IPv4Network(node.spec.pod_cidr).network_address + 1)
    raise AssertionError("no untainted node with a pod range: pod networking is off")


def test_an_http_source(harness: Harness, media: dict, api: client.ApiClient) -> None:
    """A VideoJob whose source is an http:// URL on a web server outside the cluster: the
    split, inference and assemble Jobs all read it with ranged GETs of the planned version."""
    source = media["4s"]
    with WebServer(host=pod_reachable_host(api)) as web:
        url = web.put("films/four.mp4", source.read_bytes())
        harness.start_operator()
        harness.create_videojob("web", url, parallelism=2)
        vj = harness.wait_phase("web", "Succeeded", "Failed", timeout=120)
        gets = web.gets("films/four.mp4")
    status = vj["status"]
    assert status["phase"] == "Succeeded", status
    output = file_path(status["outputUri"])
    assert frame_count(output) == frame_count(source)
    assert abs(audio_duration(output) - audio_duration(source)) <= 1 / 24 + 1e-6

    segments = harness.segments("web")
    assert len(segments) == status["segmentsTotal"] == 4
    # Each segment reads the source pinned to the version the split Job planned.
    served = web.files["films/four.mp4"]
    assert all(s["spec"]["inputUri"].startswith(f"{url}#pin-size=") for s in segments)
    # Only ranged reads: one first-byte probe per Job (split, 4 inference, assemble) at
    # least, then windows, each pinned with If-Match.
    assert gets and all(r.status == 206 for r in gets), [r.status for r in gets]
    probes = [r for r in gets if r.headers.get("Range") == "bytes=0-0"]
    assert len(probes) >= 6
    assert all(r.headers.get("If-Match") == served.etag_value for r in gets[1:])
