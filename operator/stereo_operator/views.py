"""Small, immutable views of the cluster objects the operator decides from.

The kopf indexes hold these instead of whole bodies: they are what the pure reconciler needs,
parsed once per watch event, and cheap to keep for thousands of segments.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from stereo_operator import labels
from stereo_operator.labels import Role
from stereo_types.segment import SegmentCompletion, SegmentPhase, SegmentSpec, SegmentStatus
from stereo_types.videojob import VideoJobPhase

# The Job controller's condition reason when a podFailurePolicy FailJob rule matched:
# with our policy that is the bad-input exit code, so retrying cannot help.
POD_FAILURE_POLICY_REASON = "PodFailurePolicy"

Body = Mapping[str, Any]


def parse_time(value: object) -> datetime | None:
    """An RFC 3339 timestamp as the API server writes it, or None."""
    if not isinstance(value, str) or not value:
        return None
    return datetime.fromisoformat(value)


def _meta(body: Body) -> Mapping[str, Any]:
    meta: Mapping[str, Any] = body.get("metadata") or {}
    return meta


@dataclass(frozen=True, slots=True)
class JobView:
    """A batch/v1 Job the operator created, reduced to its outcome."""

    name: str
    namespace: str
    videojob_uid: str
    role: Role
    index: int | None
    attempt: int | None
    succeeded: bool
    failed: bool
    finished_at: datetime | None
    reason: str | None
    message: str | None
    deleting: bool

    @property
    def active(self) -> bool:
        """Not finished: holds (or waits for) a GPU slot."""
        return not (self.succeeded or self.failed)

    @property
    def bad_input(self) -> bool:
        return self.failed and self.reason == POD_FAILURE_POLICY_REASON


def _true_condition(status: Mapping[str, Any], kind: str) -> Mapping[str, Any] | None:
    for cond in status.get("conditions") or ():
        if cond.get("type") == kind and cond.get("status") == "True":
            found: Mapping[str, Any] = cond
            return found
    return None


def job_view(body: Body) -> JobView | None:
    """The view of a Job carrying our labels; None for anything else."""
    meta = _meta(body)
    job_labels: dict[str, str] = dict(meta.get("labels") or {})
    uid = job_labels.get(labels.VIDEOJOB_UID)
    try:
        role = Role(job_labels.get(labels.ROLE, ""))
    except ValueError:
        return None
    if not uid:
        return None
    status: Mapping[str, Any] = body.get("status") or {}
    complete = _true_condition(status, "Complete")
    failed = _true_condition(status, "Failed")
    finished_at: datetime | None = None
    if complete is not None:
        finished_at = parse_time(status.get("completionTime")) or parse_time(
            complete.get("lastTransitionTime")
        )
    elif failed is not None:
        finished_at = parse_time(failed.get("lastTransitionTime"))
    return JobView(
        name=meta.get("name", ""),
        namespace=meta.get("namespace", ""),
        videojob_uid=uid,
        role=role,
        index=labels.int_label(job_labels, labels.SEGMENT_INDEX),
        attempt=labels.int_label(job_labels, labels.ATTEMPT),
        succeeded=complete is not None,
        failed=complete is None and failed is not None,
        finished_at=finished_at,
        reason=failed.get("reason") if failed is not None and complete is None else None,
        message=failed.get("message") if failed is not None and complete is None else None,
        deleting=bool(meta.get("deletionTimestamp")),
    )


@dataclass(frozen=True, slots=True)
class SegmentView:
    """A Segment: its spec (what an inference Job needs) and the status fields we decide on."""

    name: str
    namespace: str
    uid: str
    resource_version: str
    spec: SegmentSpec
    status: SegmentStatus
    deleting: bool

    @property
    def index(self) -> int:
        return self.spec.index

    @property
    def videojob_uid(self) -> str:
        return self.spec.video_job_uid

    @property
    def phase(self) -> SegmentPhase:
        return self.status.phase

    @property
    def attempts(self) -> int:
        return self.status.attempts

    @property
    def completion(self) -> SegmentCompletion | None:
        return self.status.completion


def segment_view(body: Body) -> SegmentView:
    """Parse a Segment; raises pydantic's ValidationError on a malformed one."""
    meta = _meta(body)
    return SegmentView(
        name=meta.get("name", ""),
        namespace=meta.get("namespace", ""),
        uid=meta.get("uid", ""),
        resource_version=str(meta.get("resourceVersion", "")),
        spec=SegmentSpec.model_validate(dict(body.get("spec") or {})),
        status=SegmentStatus.model_validate(dict(body.get("status") or {})),
        deleting=bool(meta.get("deletionTimestamp")),
    )


@dataclass(frozen=True, slots=True)
class VideoJobSummary:
    """What the fair share of the cluster-wide cap needs to know about every VideoJob."""

    uid: str
    namespace: str
    name: str
    created_at: datetime | None
    parallelism: int
    suspend: bool
    phase: VideoJobPhase
    segments_total: int
    deleting: bool


def videojob_summary(body: Body) -> VideoJobSummary:
    meta = _meta(body)
    spec: Mapping[str, Any] = body.get("spec") or {}
    status: Mapping[str, Any] = body.get("status") or {}
    try:
        phase = VideoJobPhase(status.get("phase") or VideoJobPhase.PENDING)
    except ValueError:
        phase = VideoJobPhase.PENDING
    return VideoJobSummary(
        uid=meta.get("uid", ""),
        namespace=meta.get("namespace", ""),
        name=meta.get("name", ""),
        created_at=parse_time(meta.get("creationTimestamp")),
        parallelism=int(spec.get("parallelism") or 1),
        suspend=bool(spec.get("suspend")),
        phase=phase,
        segments_total=int(status.get("segmentsTotal") or 0),
        deleting=bool(meta.get("deletionTimestamp")),
    )
