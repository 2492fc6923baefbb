"""Segments: the manifest made from one planned segment, and the pure status transitions.

Transitions return JSON merge patches of status (a null removes a field), so each one is one
PATCH of the status subresource and touches nothing the watcher writes except where stated.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from stereo_operator import labels
from stereo_operator.jobs import Manifest, videojob_owner
from stereo_types.layout import StorageRoot, VideoJobRef
from stereo_types.names import API_VERSION, SEGMENT_KIND, segment_name
from stereo_types.plan import PlannedSegment
from stereo_types.segment import (
    CompletionSource,
    SegmentCompletion,
    SegmentPhase,
    SegmentSpec,
    SegmentStatus,
)
from stereo_types.videojob import VideoJobSpec

Patch = dict[str, Any]

# Retry delays double per failed attempt; past this they stop growing (unless the user's base
# delay is longer), so a VideoJob with many retries never waits days for one segment.
MAX_BACKOFF_SECONDS = 3600
MAX_REASON = 128
MAX_MESSAGE = 4096

# Job condition reasons, as a user reads them in a Segment's status.
_REASONS = {
    "PodFailurePolicy": "BadInput",
    "BackoffLimitExceeded": "JobFailed",
}


def rfc3339(moment: datetime) -> str:
    """metav1.Time: UTC, second precision, 'Z'."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def segment_spec(
    ref: VideoJobRef, spec: VideoJobSpec, root: StorageRoot, planned: PlannedSegment
) -> SegmentSpec:
    return SegmentSpec(
        video_job=ref.name,
        video_job_uid=ref.uid,
        index=planned.index,
        input_uri=planned.input_uri,
        window=planned.window,
        # The plan names it (layout.segment_output_uri), so split, engine and assemble agree.
        output_uri=planned.output_uri,
        start_frame=planned.start_frame,
        frame_count=planned.frame_count,
        start_seconds=planned.start_seconds,
        duration_seconds=planned.duration_seconds,
        format=spec.format,
        # The segment's own pre-roll: the plan gives the first segment none (nothing
        # precedes it); the window carries it too, for the engine.
        stereo=spec.stereo.model_copy(update={"pre_roll_frames": planned.pre_roll_frames}),
        encoding=spec.encoding,
        backend=spec.backend,
    )


def segment_manifest(
    ref: VideoJobRef, spec: VideoJobSpec, root: StorageRoot, planned: PlannedSegment
) -> Manifest:
    return {
        "apiVersion": API_VERSION,
        "kind": SEGMENT_KIND,
        "metadata": {
            "name": segment_name(ref.name, planned.index),
            "namespace": ref.namespace,
            "labels": labels.segment_labels(ref, planned.index),
            "ownerReferences": [videojob_owner(ref)],
        },
        "spec": segment_spec(ref, spec, root, planned).to_wire(),
    }


def max_attempts(spec: VideoJobSpec) -> int:
    return spec.max_retries + 1


def retry_delay(spec: VideoJobSpec, failed_attempts: int) -> timedelta:
    """backoffSeconds * 2**(failed_attempts-1), capped."""
    base = spec.backoff_seconds
    exponent = max(0, failed_attempts - 1)
    cap = max(base, MAX_BACKOFF_SECONDS)
    seconds = cap if exponent >= 32 else min(base * 2**exponent, cap)
    return timedelta(seconds=seconds)


def launch_patch(status: SegmentStatus, attempt: int, job_name: str, now: datetime) -> Patch:
    patch: Patch = {
        "phase": SegmentPhase.RUNNING.value,
        "attempts": attempt,
        "jobName": job_name,
        "attemptStartTime": rfc3339(now),
        "nextAttemptTime": None,
    }
    if status.start_time is None:
        patch["startTime"] = rfc3339(now)
    return patch


def completed_patch(completion: SegmentCompletion) -> Patch:
    """The watcher recorded the output: the segment is done."""
    return {
        "phase": SegmentPhase.COMPLETED.value,
        "completionTime": rfc3339(completion.event_time),
        "nextAttemptTime": None,
    }


@dataclass(frozen=True, slots=True)
class StoredObject:
    """The output object as a direct check of storage found it."""

    uri: str
    size: int
    etag: str | None = None
    generation: int | None = None
    updated: datetime | None = None


def reconciled_completion(found: StoredObject, now: datetime) -> SegmentCompletion:
    return SegmentCompletion(
        uri=found.uri,
        size=found.size,
        etag=found.etag,
        generation=found.generation,
        event_time=found.updated or now,
        source=CompletionSource.RECONCILE,
        recorded_at=now.replace(microsecond=0),
    )


def verified_patch(completion: SegmentCompletion) -> Patch:
    """No storage event came within the grace period, but the object is there."""
    return {
        "completion": completion.to_wire(),
        "phase": SegmentPhase.COMPLETED.value,
        "completionTime": rfc3339(completion.event_time),
        "nextAttemptTime": None,
    }


@dataclass(frozen=True, slots=True)
class AttemptFailure:
    reason: str
    message: str
    bad_input: bool = False
    finished_at: datetime | None = None


def failure_reason(job_reason: str) -> str:
    return _REASONS.get(job_reason, job_reason)[:MAX_REASON]


@dataclass(frozen=True, slots=True)
class FailureOutcome:
    patch: Patch
    final: bool
    retry_at: datetime | None


def attempt_failed(
    status: SegmentStatus, spec: VideoJobSpec, failure: AttemptFailure, now: datetime
) -> FailureOutcome:
    """Retry with backoff, or fail the segment for good (bad input, or no attempts left).

    The retry time counts from when the attempt finished, so deciding twice (a stale view,
    a handler run twice) gives the same patch.
    """
    patch: Patch = {
        "lastFailureReason": failure.reason[:MAX_REASON],
        "lastFailureMessage": failure.message[:MAX_MESSAGE],
    }
    if failure.bad_input or status.attempts >= max_attempts(spec):
        patch.update(
            phase=SegmentPhase.FAILED.value,
            completionTime=rfc3339(now),
            nextAttemptTime=None,
        )
        return FailureOutcome(patch, final=True, retry_at=None)
    retry_at = (failure.finished_at or now) + retry_delay(spec, status.attempts)
    patch.update(phase=SegmentPhase.PENDING.value, nextAttemptTime=rfc3339(retry_at))
    return FailureOutcome(patch, final=False, retry_at=retry_at)


def stopped_patch(reason: str, videojob_failure: str, now: datetime) -> Patch:
    """The VideoJob failed before this segment finished: it ends Failed, saying why."""
    return {
        "phase": SegmentPhase.FAILED.value,
        "lastFailureReason": reason,
        "lastFailureMessage": f"stopped because the VideoJob failed: {videojob_failure}"[
            :MAX_MESSAGE
        ],
        "completionTime": rfc3339(now),
        "nextAttemptTime": None,
    }


def event_body(namespace: str, name: str, uid: str) -> dict[str, Any]:
    """Enough of a Segment for an Event's involvedObject."""
    return {
        "apiVersion": API_VERSION,
        "kind": SEGMENT_KIND,
        "metadata": {"namespace": namespace, "name": name, "uid": uid},
    }
