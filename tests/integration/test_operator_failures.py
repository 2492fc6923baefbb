"""Failures: retries with backoff, retries exhausted, missing outputs, bad input."""

from __future__ import annotations

import time

import pytest
from kubernetes import client

from tests.operator.harness import Harness, active

# The fixtures (cluster_access, harness, media) live in the harness module.
pytest_plugins = ["tests.operator.harness"]
pytestmark = pytest.mark.cluster


def conditions(vj: dict) -> dict[str, dict]:
    return {c["type"]: c for c in vj["status"].get("conditions", [])}


def segment_events(harness: Harness, segment: str) -> list[tuple[str, str, str]]:
    events = client.CoreV1Api(harness.api).list_namespaced_event(harness.namespace).items
    return [
        (e.type, e.reason, e.message)
        for e in events
        if e.involved_object.kind == "Segment" and e.involved_object.name == segment
    ]


def test_a_failed_attempt_is_retried_then_succeeds(harness: Harness, media: dict) -> None:
    harness.start_operator()
    harness.set_faults("retry", {"convert": {"1": {"1": "fail:75"}}})
    harness.create_videojob("retry", media["4s"], maxRetries=2, backoffSeconds=1)
    vj = harness.wait_phase("retry", "Succeeded", "Failed", timeout=90)
    assert vj["status"]["phase"] == "Succeeded", vj["status"]
    assert vj["status"]["retries"] == 1
    seg = harness.segments("retry")[1]["status"]
    assert seg["attempts"] == 2
    assert seg["lastFailureReason"] == "JobFailed"
    assert "injected failure" in seg["lastFailureMessage"]  # the pod's termination message
    assert len(harness.jobs("inference")) == 4 + 1
    warnings = [e for e in segment_events(harness, "retry-00001") if e[0] == "Warning"]
    assert any(reason == "AttemptFailed" for _, reason, _ in warnings), warnings


def test_retries_exhausted_fail_the_videojob_naming_the_segment(
    harness: Harness, media: dict
) -> None:
    harness.start_operator()
    harness.set_faults("doomed", {"convert": {"0": {"*": "fail:75"}, "*": {"*": "sleep:30"}}})
    # No backoff: the retry is due at once and, lowest index first, goes before segment 2.
    harness.create_videojob("doomed", media["4s"], parallelism=2, maxRetries=1, backoffSeconds=0)
    vj = harness.wait_phase("doomed", "Failed", "Succeeded", timeout=90)
    status = vj["status"]
    assert status["phase"] == "Failed"
    failed = conditions(vj)["Failed"]
    assert failed["reason"] == "SegmentFailed"
    assert "segment 0 failed after 2 attempt(s)" in failed["message"]
    assert "segment 0" in status["message"]
    segments = harness.segments("doomed")
    assert segments[0]["status"]["phase"] == "Failed"
    assert segments[0]["status"]["attempts"] == 2
    # Its running inference Jobs are deleted, and nothing new starts.
    harness.wait(
        lambda: not [j for j in harness.jobs("inference") if active(j)],
        30,
        "the failed VideoJob's inference Jobs to be deleted",
    )
    assert [s.get("status", {}).get("attempts", 0) for s in segments[2:]] == [0, 0]

    # Every other segment ends Failed too, saying why; a running one included.
    def all_ended() -> list[dict] | None:
        segs = harness.segments("doomed")
        ended = all(s.get("status", {}).get("phase") in ("Completed", "Failed") for s in segs)
        return segs if ended else None

    segments = harness.wait(all_ended, 30, "every segment of the failed VideoJob to end")
    assert len(segments) == 4
    for seg in segments[1:]:
        seg_status = seg["status"]
        assert seg_status["phase"] == "Failed", seg_status
        assert seg_status["lastFailureReason"] == "VideoJobFailed"
        message = seg_status["lastFailureMessage"]
        assert message.startswith("stopped because the VideoJob failed: segment 0 failed"), message
        assert seg_status["completionTime"]
    # Idempotent: later ticks (one a second) write nothing more.
    versions = [s["metadata"]["resourceVersion"] for s in segments]
    time.sleep(3)
    assert [s["metadata"]["resourceVersion"] for s in harness.segments("doomed")] == versions
    assert not [j for j in harness.jobs("inference") if active(j)]


def test_a_job_that_writes_no_output_is_retried(harness: Harness, media: dict) -> None:
    harness.start_operator()
    harness.set_faults("lazy", {"convert": {"2": {"1": "skip"}}})
    harness.create_videojob("lazy", media["4s"], backoffSeconds=1)
    vj = harness.wait_phase("lazy", "Succeeded", "Failed", timeout=90)
    assert vj["status"]["phase"] == "Succeeded", vj["status"]
    seg = harness.segments("lazy")[2]["status"]
    assert seg["attempts"] == 2
    assert seg["lastFailureReason"] == "OutputMissing"


def test_bad_input_in_a_segment_fails_at_once(harness: Harness, media: dict) -> None:
    harness.start_operator()
    harness.set_faults("bad", {"convert": {"1": {"*": "fail:3"}}})
    harness.create_videojob("bad", media["4s"], maxRetries=3)
    vj = harness.wait_phase("bad", "Failed", "Succeeded", timeout=90)
    assert vj["status"]["phase"] == "Failed"
    seg = harness.segments("bad")[1]["status"]
    assert seg["attempts"] == 1
    assert seg["lastFailureReason"] == "BadInput"


def test_an_unreadable_source_fails_with_a_readable_reason_and_spares_others(
    harness: Harness, media: dict, tmp_path
) -> None:
    harness.start_operator()
    missing = tmp_path / "no-such-video.mp4"
    harness.create_videojob("ghost", missing)
    harness.create_videojob("fine", media["4s"])
    vj = harness.wait_phase("ghost", "Failed", "Succeeded", timeout=60)
    failed = conditions(vj)["Failed"]
    assert failed["reason"] == "BadInput"
    assert str(missing) in failed["message"] or "no-such-video" in failed["message"], failed
    assert vj["status"]["message"] == failed["message"]
    assert harness.segments("ghost") == []
    events = client.CoreV1Api(harness.api).list_namespaced_event(harness.namespace).items
    assert any(
        e.type == "Warning" and e.reason == "BadInput" and e.involved_object.name == "ghost"
        for e in events
    )
    assert (
        harness.wait_phase("fine", "Succeeded", "Failed", timeout=90)["status"]["phase"]
        == "Succeeded"
    )
