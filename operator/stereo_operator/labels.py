"""The labels on everything the operator creates, and the selectors built from them.

The keys are shared with clients (stereo_types.labels); the operator-only ones live here.
"""

from __future__ import annotations

from stereo_types.labels import ATTEMPT, ROLE, SEGMENT_INDEX, VIDEOJOB, VIDEOJOB_UID, Role
from stereo_types.layout import VideoJobRef

__all__ = ["ATTEMPT", "ROLE", "SEGMENT_INDEX", "VIDEOJOB", "VIDEOJOB_UID", "Role"]

KUEUE_QUEUE = "kueue.x-k8s.io/queue-name"
# Set by the Job controller on the pods of a Job.
JOB_NAME = "batch.kubernetes.io/job-name"


def videojob_labels(ref: VideoJobRef) -> dict[str, str]:
    return {VIDEOJOB: ref.name, VIDEOJOB_UID: ref.uid}


def segment_labels(ref: VideoJobRef, index: int) -> dict[str, str]:
    return {**videojob_labels(ref), SEGMENT_INDEX: str(index)}


def job_labels(
    ref: VideoJobRef, role: Role, index: int | None = None, attempt: int | None = None
) -> dict[str, str]:
    labels = {**videojob_labels(ref), ROLE: role.value}
    if index is not None:
        labels[SEGMENT_INDEX] = str(index)
    if attempt is not None:
        labels[ATTEMPT] = str(attempt)
    return labels


def videojob_selector(uid: str) -> str:
    """Everything (Segments, Jobs) of one VideoJob incarnation."""
    return f"{VIDEOJOB_UID}={uid}"


def int_label(labels: dict[str, str], key: str) -> int | None:
    """A numeric label, or None when absent or not a number (hand-made objects)."""
    value = labels.get(key)
    return int(value) if value is not None and value.isdigit() else None
