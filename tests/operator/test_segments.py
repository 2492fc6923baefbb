"""Segment manifests and status transitions."""

from __future__ import annotations

from datetime import timedelta

from stereo_operator import segments
from stereo_operator.segments import AttemptFailure
from stereo_types.segment import SegmentStatus
from tests.operator.factories import NOW, REF, ROOT, plan, spec


def test_manifest_copies_the_plan_and_the_videojob_settings() -> None:
    vj_spec = spec(format="half-sbs", stereo={"preRollFrames": 8, "divergence": 3.0})
    planned = plan(3, pre_roll=8).segments[2]
    manifest = segments.segment_manifest(REF, vj_spec, ROOT, planned)
    assert manifest["metadata"]["name"] == "movie-00002"
    assert manifest["metadata"]["labels"]["stereo.dev/videojob-uid"] == REF.uid
    seg = manifest["spec"]
    assert seg["videoJob"] == "movie" and seg["videoJobUid"] == REF.uid
    assert seg["index"] == 2
    assert seg["inputUri"] == planned.input_uri
    assert seg["outputUri"] == planned.output_uri
    assert seg["format"] == "half-sbs"
    assert seg["stereo"]["divergence"] == 3.0
    assert seg["stereo"]["preRollFrames"] == 8
    first = segments.segment_manifest(REF, vj_spec, ROOT, plan(1, pre_roll=8).segments[0])
    assert first["spec"]["stereo"]["preRollFrames"] == 0  # nothing precedes frame 0


def test_retry_delay_doubles_and_is_capped() -> None:
    vj = spec(backoffSeconds=10)
    assert [segments.retry_delay(vj, n).total_seconds() for n in (1, 2, 3, 4)] == [
        10,
        20,
        40,
        80,
    ]
    assert segments.retry_delay(vj, 40).total_seconds() == segments.MAX_BACKOFF_SECONDS
    assert segments.retry_delay(spec(backoffSeconds=0), 3).total_seconds() == 0


def test_attempt_failed_retries_then_fails_for_good() -> None:
    vj = spec(maxRetries=1, backoffSeconds=5)
    failure = AttemptFailure("JobFailed", "boom", finished_at=NOW - timedelta(seconds=1))
    first = segments.attempt_failed(SegmentStatus(attempts=1), vj, failure, NOW)
    assert not first.final
    assert first.patch["phase"] == "Pending"
    assert first.retry_at == NOW + timedelta(seconds=4)
    last = segments.attempt_failed(SegmentStatus(attempts=2), vj, failure, NOW)
    assert last.final
    assert last.patch["phase"] == "Failed"
    assert last.patch["completionTime"] == "2030-01-01T12:00:00Z"


def test_long_reasons_and_messages_fit_the_schema() -> None:
    failure = AttemptFailure("X" * 500, "y" * 10_000, bad_input=True)
    outcome = segments.attempt_failed(SegmentStatus(attempts=1), spec(), failure, NOW)
    assert len(outcome.patch["lastFailureReason"]) == segments.MAX_REASON
    assert len(outcome.patch["lastFailureMessage"]) == segments.MAX_MESSAGE
    SegmentStatus.model_validate(outcome.patch)  # the CRD's bounds


def test_launch_patch_keeps_the_first_start_time() -> None:
    started = SegmentStatus(attempts=1, startTime=NOW - timedelta(hours=1))
    patch = segments.launch_patch(started, 2, "j", NOW)
    assert "startTime" not in patch
    assert segments.launch_patch(SegmentStatus(), 1, "j", NOW)["startTime"] == (
        "2030-01-01T12:00:00Z"
    )


def test_failure_reasons_read_well() -> None:
    assert segments.failure_reason("PodFailurePolicy") == "BadInput"
    assert segments.failure_reason("DeadlineExceeded") == "DeadlineExceeded"
