"""Segment: one slice of a VideoJob, converted by one inference Job."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated

from pydantic import AwareDatetime, BeforeValidator, Field, StringConstraints

from stereo_types.backend import BackendSpec
from stereo_types.base import (
    MAX_MESSAGE_LENGTH,
    MAX_REASON_LENGTH,
    SourceUri,
    SpecModel,
    StatusModel,
    StorageUri,
    object_default,
)
from stereo_types.conditions import ConditionList
from stereo_types.formats import DEFAULT_FORMAT, EncodingSettings, FormatChoice, StereoSettings
from stereo_types.names import (
    DNS1123_SUBDOMAIN_PATTERN,
    MAX_LABEL_VALUE_LENGTH,
    MAX_SEGMENT_INDEX,
    MAX_UID_LENGTH,
    MAX_VIDEOJOB_NAME_LENGTH,
    UID_PATTERN,
)
from stereo_types.plan import SourceWindow


def _unquote(value: object) -> object:
    # S3 reports ETags quoted in HEAD responses and unquoted in events.
    return value.strip('"') if isinstance(value, str) else value


Etag = Annotated[str, BeforeValidator(_unquote), StringConstraints(max_length=256)]
Sequencer = Annotated[
    str, StringConstraints(min_length=1, max_length=64, pattern=r"^[0-9A-Fa-f]+$")
]


class SegmentPhase(StrEnum):
    PENDING = "Pending"
    RUNNING = "Running"
    COMPLETED = "Completed"
    FAILED = "Failed"


class CompletionSource(StrEnum):
    """What reported a segment output: an event source, or the operator's own check."""

    SQS = "sqs"
    PUBSUB = "pubsub"
    MINIO_WEBHOOK = "minio-webhook"
    SEAWEEDFS_WEBHOOK = "seaweedfs-webhook"
    RECONCILE = "reconcile"


class SegmentCompletion(StatusModel):
    """The segment output object as last seen in storage."""

    uri: StorageUri
    """URI of the output object."""
    size: int = Field(ge=0)
    """Size of the object in bytes."""
    etag: Etag | None = None
    """Entity tag of the object, without quotes."""
    generation: int | None = Field(default=None, ge=0)
    """GCS object generation; orders writes to one object."""
    sequencer: Sequencer | None = None
    """S3 event sequencer (hex); orders events for one key."""
    event_time: AwareDatetime
    """When storage reports the object was written."""
    source: CompletionSource
    """What reported the object."""
    recorded_at: AwareDatetime
    """When the operator recorded this completion."""


class SegmentConversion(StatusModel):
    """Conversion figures of the attempt whose output completed the segment."""

    wall_seconds: float = Field(ge=0)
    """From the attempt's start to its output in storage (queueing and start-up included)."""
    frames: int = Field(ge=0)
    """Frames the segment contributes to the output."""
    frames_per_second: float | None = Field(default=None, ge=0)
    """Frames over wall seconds; absent when the wall time rounds to zero."""
    input_bytes: int | None = Field(default=None, ge=0)
    """Size of the segment's input object; absent when storage could not tell."""
    seconds_per_mb: float | None = Field(default=None, ge=0)
    """Wall seconds per megabyte (10^6 bytes) of input."""
    attempts: int = Field(ge=0)
    """Attempts the segment took, this one included."""


def _sign(difference: int) -> int:
    return (difference > 0) - (difference < 0)


def compare_sequencers(a: str, b: str) -> int:
    """Negative, zero or positive as S3 sequencer a is older than, as new as, or newer than b.

    As the current Amazon S3 documentation says: pad the shorter one with zeros on the
    right, then compare as strings. Padding on the left (what older copies of the page said)
    can make a newer overwrite whose sequencer grew a digit look older.
    """
    width = max(len(a), len(b))
    left, right = a.upper().ljust(width, "0"), b.upper().ljust(width, "0")
    return (left > right) - (left < right)


def _compare_times(a: datetime, b: datetime) -> int:
    return (a > b) - (a < b)


def compare_completions(a: SegmentCompletion, b: SegmentCompletion) -> int:
    """Order two reports of a segment output: negative, zero or positive as a is
    older than, as new as, or newer than b.

    Generations (GCS) and sequencers (S3) order writes to one object exactly;
    across different objects, or when one report lacks them, eventTime decides.
    """
    if a.uri == b.uri:
        if a.generation is not None and b.generation is not None:
            return _sign(a.generation - b.generation)
        if a.sequencer is not None and b.sequencer is not None:
            return compare_sequencers(a.sequencer, b.sequencer)
    return _compare_times(a.event_time, b.event_time)


def should_replace_completion(
    current: SegmentCompletion | None, incoming: SegmentCompletion
) -> bool:
    """Whether incoming should overwrite the recorded completion.

    Monotonic: an older or equally new report never replaces the recorded one,
    so redelivered and out-of-order events are harmless.
    """
    return current is None or compare_completions(incoming, current) > 0


VideoJobName = Annotated[
    str,
    StringConstraints(
        min_length=1, max_length=MAX_VIDEOJOB_NAME_LENGTH, pattern=DNS1123_SUBDOMAIN_PATTERN
    ),
]
Uid = Annotated[
    str, StringConstraints(min_length=1, max_length=MAX_UID_LENGTH, pattern=UID_PATTERN)
]


class SegmentSpec(SpecModel):
    """One slice of a VideoJob's source; self-contained, so an inference Job
    needs nothing but this."""

    video_job: VideoJobName
    """Name of the owning VideoJob."""
    video_job_uid: Uid
    """UID of the owning VideoJob; storage keys carry it, so a re-created
    VideoJob of the same name is never completed by a stale object."""
    index: int = Field(ge=0, le=MAX_SEGMENT_INDEX)
    """Position of the segment in the VideoJob, from 0."""
    input_uri: SourceUri
    """The source; the inference Job reads the segment's window of it."""
    window: SourceWindow | None = None
    """Which frames of the source the segment decodes and owns (from the plan)."""
    output_uri: StorageUri
    """Where the inference Job writes the converted segment."""
    start_frame: int = Field(ge=0)
    """First frame of the segment in the source (after pre-roll)."""
    frame_count: int = Field(ge=1)
    """Number of frames the segment contributes to the output."""
    start_seconds: float = Field(ge=0)
    """Start of the segment in the source, in seconds."""
    duration_seconds: float = Field(gt=0, le=86400)
    """Duration of the segment, in seconds."""
    format: FormatChoice = DEFAULT_FORMAT
    """Output layout, copied from the VideoJob."""
    stereo: StereoSettings = Field(
        default_factory=StereoSettings, json_schema_extra=object_default(StereoSettings)
    )
    """Stereo settings, copied from the VideoJob."""
    encoding: EncodingSettings = Field(
        default_factory=EncodingSettings, json_schema_extra=object_default(EncodingSettings)
    )
    """Encoder settings, copied from the VideoJob."""
    backend: BackendSpec = Field(
        default_factory=BackendSpec, json_schema_extra=object_default(BackendSpec)
    )
    """Inference backend, copied from the VideoJob."""


class SegmentStatus(StatusModel):
    """Observed state of a Segment."""

    phase: SegmentPhase = SegmentPhase.PENDING
    """Pending, Running, Completed or Failed."""
    attempts: int = Field(default=0, ge=0)
    """Inference Jobs started for this segment so far."""
    job_name: str | None = Field(default=None, max_length=MAX_LABEL_VALUE_LENGTH)
    """Name of the current or last inference Job."""
    last_failure_reason: str | None = Field(default=None, max_length=MAX_REASON_LENGTH)
    """CamelCase cause of the last failed attempt."""
    last_failure_message: str | None = Field(default=None, max_length=MAX_MESSAGE_LENGTH)
    """Details of the last failed attempt."""
    start_time: AwareDatetime | None = None
    """When the first attempt started."""
    attempt_start_time: AwareDatetime | None = None
    """When the current (or last) attempt started."""
    completion_time: AwareDatetime | None = None
    """When the segment completed or finally failed."""
    next_attempt_time: AwareDatetime | None = None
    """Earliest time of the next attempt (retry backoff)."""
    completion: SegmentCompletion | None = None
    """The output object, once storage reported it."""
    conversion: SegmentConversion | None = None
    """Conversion figures, recorded with the completion."""
    observed_generation: int | None = Field(default=None, ge=0)
    """metadata.generation this status was computed for."""
    conditions: ConditionList = Field(default_factory=list)
    """Current state of the segment's aspects."""
