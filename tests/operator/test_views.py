"""Parsing Jobs, Segments and VideoJobs into the views the reconciler uses."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from stereo_operator.labels import Role
from stereo_operator.views import job_view, segment_view, videojob_summary
from stereo_types.segment import SegmentPhase
from stereo_types.videojob import VideoJobPhase
from tests.operator.factories import segment

LABELS = {
    "stereo.dev/videojob": "movie",
    "stereo.dev/videojob-uid": "u1",
    "stereo.dev/role": "inference",
    "stereo.dev/segment-index": "4",
    "stereo.dev/attempt": "2",
}


def job_body(status: dict[str, Any], labels: dict[str, str] = LABELS) -> dict[str, Any]:
    return {"metadata": {"name": "j", "namespace": "ns", "labels": labels}, "status": status}


def test_running_job() -> None:
    view = job_view(job_body({"active": 1}))
    assert view is not None
    assert (view.role, view.index, view.attempt, view.active) == (Role.INFERENCE, 4, 2, True)


def test_completed_job() -> None:
    status = {
        "completionTime": "2030-01-01T10:00:05Z",
        "conditions": [
            {"type": "SuccessCriteriaMet", "status": "True"},
            {"type": "Complete", "status": "True", "lastTransitionTime": "2030-01-01T10:00:06Z"},
        ],
    }
    view = job_view(job_body(status))
    assert view is not None
    assert view.succeeded and not view.active
    assert view.finished_at == datetime(2030, 1, 1, 10, 0, 5, tzinfo=UTC)


def test_failed_job_by_pod_failure_policy_is_bad_input() -> None:
    status = {
        "conditions": [
            {"type": "FailureTarget", "status": "True", "reason": "PodFailurePolicy"},
            {
                "type": "Failed",
                "status": "True",
                "reason": "PodFailurePolicy",
                "message": "Container main for pod ns/p failed with exit code 3",
                "lastTransitionTime": "2030-01-01T10:00:06Z",
            },
        ]
    }
    view = job_view(job_body(status))
    assert view is not None
    assert view.failed and view.bad_input
    assert view.reason == "PodFailurePolicy"


def test_failure_target_alone_is_still_active() -> None:
    status = {"conditions": [{"type": "FailureTarget", "status": "True"}]}
    view = job_view(job_body(status))
    assert view is not None and view.active


def test_foreign_jobs_are_not_viewed() -> None:
    assert job_view(job_body({}, {"app": "other"})) is None
    assert job_view(job_body({}, {**LABELS, "stereo.dev/role": "mystery"})) is None


def test_segment_view_round_trip() -> None:
    seg = segment(3, phase="Running", attempts=2)
    body = {
        "metadata": {"name": seg.name, "namespace": "films", "uid": "s", "resourceVersion": 42},
        "spec": seg.spec.to_wire(),
        "status": {**seg.status.to_wire(), "kopf": {"ignored": True}},
    }
    view = segment_view(body)
    assert view.index == 3 and view.phase is SegmentPhase.RUNNING and view.attempts == 2
    assert view.resource_version == "42"


def test_videojob_summary_defaults() -> None:
    summary = videojob_summary({"metadata": {"uid": "u", "name": "n", "namespace": "x"}})
    assert summary.phase is VideoJobPhase.PENDING
    assert summary.parallelism == 1 and not summary.suspend
