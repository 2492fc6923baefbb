"""VideoJob: a user's request to convert one video to stereo 3D."""

from __future__ import annotations

from enum import StrEnum
from typing import Self

from pydantic import AwareDatetime, ConfigDict, Field, field_validator, model_validator

from stereo_types.backend import BackendSpec, Engine
from stereo_types.base import (
    MAX_MESSAGE_LENGTH,
    MAX_URI_LENGTH,
    RootUri,
    SourceUri,
    SpecModel,
    StatusModel,
    StorageUri,
    cel_rule,
    cel_rules,
    object_default,
)
from stereo_types.conditions import ConditionList
from stereo_types.formats import (
    DEFAULT_FORMAT,
    DEFAULT_PRE_ROLL_FRAMES,
    DEPTH_ANYTHING_WARM_UP_FRAMES,
    TEMPORAL_DEPTH_MODELS,
    EncodingSettings,
    FormatChoice,
    StereoSettings,
)
from stereo_types.layout import StorageRoot, VideoJobRef, final_output_uri
from stereo_types.seams import SeamScore


class OutputSettings(SpecModel):
    """Where the converted video goes."""

    uri: StorageUri | None = None
    """Final output URI; defaults to final.<container> in the workspace folder."""
    keep_on_delete: bool = True
    """Keep the final output when the VideoJob is deleted."""


class TimeoutSettings(SpecModel):
    """Time limits of the inference Jobs."""

    segment_seconds: int = Field(default=3600, ge=1, le=604800)
    """activeDeadlineSeconds of each inference Job."""
    completion_grace_seconds: int = Field(default=120, ge=0, le=86400)
    """How long after a Job succeeded to wait for the storage event before
    checking the output object directly."""


# The same messages are raised by the pydantic validators and the CRD's CEL rules.
SOURCE_IMMUTABLE = "source is immutable"
FORMAT_IMMUTABLE = "format is immutable"
SEGMENT_LONGER_THAN_TIMEOUT = "segmentSeconds must be <= timeouts.segmentSeconds"

_VIDEOJOB_SPEC_RULES = cel_rules(
    cel_rule("self.source == oldSelf.source", SOURCE_IMMUTABLE),
    cel_rule("self.format == oldSelf.format", FORMAT_IMMUTABLE),
    cel_rule("self.segmentSeconds <= self.timeouts.segmentSeconds", SEGMENT_LONGER_THAN_TIMEOUT),
)


class VideoJobSpec(SpecModel):
    """What to convert, into which format, and how."""

    model_config = ConfigDict(json_schema_extra=_VIDEOJOB_SPEC_RULES)

    source: SourceUri
    """The 2D video: s3://, gs://, file://, http:// or https:// URI. Immutable."""
    format: FormatChoice = DEFAULT_FORMAT
    """Output layout of the stereo pair. Immutable."""
    stereo: StereoSettings = Field(
        default_factory=StereoSettings, json_schema_extra=object_default(StereoSettings)
    )
    """Depth and stereo settings."""
    encoding: EncodingSettings = Field(
        default_factory=EncodingSettings, json_schema_extra=object_default(EncodingSettings)
    )
    """Encoder settings."""
    output: OutputSettings = Field(
        default_factory=OutputSettings, json_schema_extra=object_default(OutputSettings)
    )
    """Final output location and retention."""
    workspace: RootUri | None = None
    """Storage root for intermediate files (s3://bucket[/prefix], gs://bucket[/prefix]
    or file:///path); defaults to the operator's configured workspace."""
    segment_seconds: int = Field(default=300, ge=1, le=3600)
    """Length of each segment, in seconds of video."""
    parallelism: int = Field(default=4, ge=1, le=1000)
    """Most segments converted at once."""
    max_retries: int = Field(default=3, ge=0, le=20)
    """Retries of a failed segment before the VideoJob fails."""
    backoff_seconds: int = Field(default=10, ge=0, le=3600)
    """Base delay before retrying a failed segment."""
    timeouts: TimeoutSettings = Field(
        default_factory=TimeoutSettings, json_schema_extra=object_default(TimeoutSettings)
    )
    """Time limits."""
    backend: BackendSpec = Field(
        default_factory=BackendSpec, json_schema_extra=object_default(BackendSpec)
    )
    """Where inference runs."""
    suspend: bool = False
    """Start no new inference Jobs while true; running ones finish."""

    @field_validator("workspace")
    @classmethod
    def _workspace_is_valid_root(cls, value: str | None) -> str | None:
        if value is not None:
            StorageRoot.parse(value)
        return value

    @model_validator(mode="after")
    def _segment_fits_timeout(self) -> Self:
        if self.segment_seconds > self.timeouts.segment_seconds:
            raise ValueError(SEGMENT_LONGER_THAN_TIMEOUT)
        return self


def pre_roll_frames(spec: VideoJobSpec) -> int:
    """The pre-roll asked for, else the one the engine's depth model needs to hide seams."""
    if spec.stereo.pre_roll_frames is not None:
        return spec.stereo.pre_roll_frames
    temporal = spec.stereo.depth_model in TEMPORAL_DEPTH_MODELS
    if spec.backend.engine is Engine.BUILTIN and temporal:
        return DEPTH_ANYTHING_WARM_UP_FRAMES
    return DEFAULT_PRE_ROLL_FRAMES


def immutable_changes(old: VideoJobSpec, new: VideoJobSpec) -> list[str]:
    """The messages of the CRD's transition rules that an update from old to new breaks."""
    broken = []
    if new.source != old.source:
        broken.append(SOURCE_IMMUTABLE)
    if new.format != old.format:
        broken.append(FORMAT_IMMUTABLE)
    return broken


def resolve_workspace(spec: VideoJobSpec, default_workspace: str) -> StorageRoot:
    """The VideoJob's workspace root, falling back to the operator's default."""
    return StorageRoot.parse(spec.workspace or default_workspace)


def resolve_output_uri(spec: VideoJobSpec, videojob: VideoJobRef, default_workspace: str) -> str:
    """The final output URI: spec.output.uri, or final.<container> in the workspace."""
    if spec.output.uri is not None:
        return spec.output.uri
    root = resolve_workspace(spec, default_workspace)
    return final_output_uri(root, videojob, spec.encoding.container.value)


class VideoJobPhase(StrEnum):
    PENDING = "Pending"
    SPLITTING = "Splitting"
    RUNNING = "Running"
    ASSEMBLING = "Assembling"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"


def format_progress(completed: int, total: int) -> str:
    """The status.progress column, e.g. '12/40'."""
    return f"{completed}/{total}"


class ConversionSummary(StatusModel):
    """The conversion figures of the completed segments, together (a few numbers, however
    many segments)."""

    segments_measured: int = Field(ge=0)
    """Completed segments with conversion figures."""
    frames: int = Field(ge=0)
    """Frames of those segments."""
    conversion_seconds: float = Field(ge=0)
    """Their wall seconds, added up."""
    frames_per_second: float | None = Field(default=None, ge=0)
    """Frames over conversion seconds: the mean rate of one inference Job."""
    seconds_per_mb: float | None = Field(default=None, ge=0)
    """Wall seconds per megabyte (10^6 bytes) of input, over the segments whose input size
    is known."""


class VideoJobStatus(StatusModel):
    """Observed state of a VideoJob: counters and conditions only, since a
    VideoJob can have thousands of segments."""

    phase: VideoJobPhase = VideoJobPhase.PENDING
    """Pending, Splitting, Running, Assembling, Succeeded or Failed."""
    segments_total: int = Field(default=0, ge=0)
    """Number of segments the source was split into."""
    segments_completed: int = Field(default=0, ge=0)
    """Segments whose output is in storage."""
    segments_running: int = Field(default=0, ge=0)
    """Segments with an inference Job running."""
    segments_failed: int = Field(default=0, ge=0)
    """Segments that failed for good."""
    retries: int = Field(default=0, ge=0)
    """Retried segment attempts, all segments together."""
    progress: str | None = Field(default=None, max_length=32)
    """Completed/total segments, e.g. '12/40'."""
    output_uri: str | None = Field(default=None, max_length=MAX_URI_LENGTH)
    """Where the final output is (or will be) written."""
    start_time: AwareDatetime | None = None
    """When processing started."""
    completion_time: AwareDatetime | None = None
    """When the VideoJob succeeded or failed."""
    estimated_completion_time: AwareDatetime | None = None
    """Estimate of when the VideoJob will finish, from the segments done so far."""
    conversion: ConversionSummary | None = None
    """Conversion figures of the completed segments, together."""
    seams: SeamScore | None = None
    """How visible the seams between segments are, from the engine's depth maps (builtin
    engine); set when the VideoJob succeeds."""
    message: str | None = Field(default=None, max_length=MAX_MESSAGE_LENGTH)
    """Human-readable summary of the current state."""
    observed_generation: int | None = Field(default=None, ge=0)
    """metadata.generation this status was computed for."""
    conditions: ConditionList = Field(default_factory=list)
    """Current state of the VideoJob's aspects."""
