"""Conversion figures on the real local cluster: on each Segment, summed on the VideoJob, and
exported on the operator's /metrics endpoint."""

from __future__ import annotations

import re
import socket
import urllib.request

import pytest

from tests.operator.harness import Harness

# The fixtures (cluster_access, harness, media) live in the harness module.
pytest_plugins = ["tests.operator.harness"]
pytestmark = pytest.mark.cluster

LABELS = '{engine="copy",format="half-sbs"}'


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def sample(scraped: str, name: str) -> float:
    found = re.search(rf"^{re.escape(name)} (\S+)$", scraped, re.MULTILINE)
    assert found is not None, f"{name} not exported"
    return float(found.group(1))


def test_conversion_figures_reach_status_and_metrics(harness: Harness, media: dict) -> None:
    metrics_port = free_port()
    harness.start_operator("--standalone", f"--metrics-port={metrics_port}")
    # Each conversion takes at least a second, so every figure is a real, non-zero rate.
    harness.set_faults("clip", {"convert": {"*": {"*": "sleep:1"}}})
    harness.create_videojob("clip", media["4s"], parallelism=2)
    vj = harness.wait_phase("clip", "Succeeded", "Failed", timeout=120)
    status = vj["status"]
    assert status["phase"] == "Succeeded", status
    total = status["segmentsTotal"]

    # Per segment: the attempt's wall time, its frames, the bytes its window reads of the source.
    frames = 0
    for seg in harness.segments("clip"):
        figures = seg["status"]["conversion"]
        input_bytes = seg["spec"]["window"]["bytes"]
        assert figures["frames"] == seg["spec"]["frameCount"]
        assert figures["attempts"] == seg["status"]["attempts"] == 1
        assert figures["inputBytes"] == input_bytes
        assert 1 <= figures["wallSeconds"] < 60
        assert figures["framesPerSecond"] == pytest.approx(
            figures["frames"] / figures["wallSeconds"], rel=1e-2
        )
        assert figures["secondsPerMb"] == pytest.approx(
            figures["wallSeconds"] / (input_bytes / 1e6), rel=1e-2
        )
        assert seg["status"]["attemptStartTime"] >= seg["status"]["startTime"]
        frames += figures["frames"]

    # On the VideoJob: a few numbers, however many segments.
    summary = status["conversion"]
    assert summary["segmentsMeasured"] == total
    assert summary["frames"] == frames
    assert summary["conversionSeconds"] >= total
    assert summary["framesPerSecond"] == pytest.approx(
        frames / summary["conversionSeconds"], rel=1e-2
    )
    assert summary["secondsPerMb"] > 0

    # Exported: by format and engine, never by segment.
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as r:
        scraped = r.read().decode()
    assert sample(scraped, f"stereo_segment_conversion_seconds_count{LABELS}") == total
    assert sample(scraped, f"stereo_segment_conversion_seconds_sum{LABELS}") == pytest.approx(
        summary["conversionSeconds"], abs=0.01
    )
    assert sample(scraped, f"stereo_segment_conversion_frames_per_second_count{LABELS}") == total
    assert sample(scraped, f"stereo_segment_conversion_seconds_per_megabyte_count{LABELS}") == (
        total
    )
    assert sample(scraped, f"stereo_segment_conversion_frames_total{LABELS}") == frames
    assert not re.search(r"stereo_segment_conversion\w*\{[^}]*(segment|index|name)=", scraped)
    # The operational metrics beside them (issue 3): by phase, in flight, retries, durations.
    assert sample(scraped, 'stereo_segments{phase="Completed"}') == total
    assert "stereo_inflight_jobs" in scraped
    assert "stereo_segment_retries_total 0.0" in scraped
    assert sample(scraped, "stereo_segment_duration_seconds_count") == total
    assert sample(scraped, 'stereo_storage_event_lag_seconds_count{source="reconcile"}') == total
