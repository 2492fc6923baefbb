"""The split plan: the contract between the split Job, the operator and the assemble Job.

The split Job writes it last, at `plan_uri` (its presence means every file it names
exists); the operator creates one Segment per entry and has each one's engine write
`output_uri`; the assemble Job joins the outputs in `index` order and muxes `audio` back in.
It is JSON, camelCase on the wire (`to_wire()`), and readers ignore fields they do not know.
"""

from __future__ import annotations

from pydantic import Field

from stereo_types.base import StatusModel, StorageUri
from stereo_types.layout import StorageRoot, VideoJobRef, as_root
from stereo_types.names import MAX_SEGMENT_INDEX

PLAN_FILE = "plan.json"
SEGMENT_EXTENSION = "mp4"


class PlannedSegment(StatusModel):
    """One segment as the split step cut it."""

    index: int = Field(ge=0, le=MAX_SEGMENT_INDEX)
    input_uri: StorageUri
    """The segment's frames, pre-roll frames first, re-encoded to start on a keyframe."""
    output_uri: StorageUri
    """Where the engine writes the converted segment (without the pre-roll frames)."""
    start_frame: int = Field(ge=0)
    """First frame of the segment in the (constant-rate) source, after pre-roll."""
    frame_count: int = Field(ge=1)
    """Frames the segment contributes to the output."""
    pre_roll_frames: int = Field(default=0, ge=0)
    """Leading frames of the input that the engine drops again on output."""
    start_seconds: float = Field(ge=0)
    duration_seconds: float = Field(gt=0)

    @property
    def input_frame_count(self) -> int:
        """Frames in the input file: the pre-roll, then the segment's own."""
        return self.pre_roll_frames + self.frame_count


class PlannedAudio(StatusModel):
    """The source's first audio track, kept aside untouched for the final mux."""

    uri: StorageUri
    codec: str | None = None
    """Codec name as ffprobe reports it (aac, opus, ...)."""
    offset_seconds: float = 0.0
    """Source audio start minus source video start; the final mux restores it."""
    duration_seconds: float | None = None


class SplitPlan(StatusModel):
    """What the split step produced from one source."""

    source: str
    """The source as the split step was given it."""
    fps_num: int = Field(ge=1)
    fps_den: int = Field(ge=1)
    """The constant frame rate fps_num/fps_den of every segment and of the final output."""
    frame_count: int = Field(ge=1)
    """Frames of the final output: the sum of the segments' frame counts."""
    width: int = Field(ge=1)
    height: int = Field(ge=1)
    """Display size of the source (rotation applied)."""
    duration_seconds: float = Field(gt=0)
    segment_seconds: float = Field(gt=0)
    """Segment length the split was asked for."""
    segment_frames: int = Field(ge=1)
    """Frames per segment (segment_seconds in whole frames); the last one may be shorter."""
    pre_roll_frames: int = Field(default=0, ge=0)
    """Pre-roll asked for; each segment's own is at most this (none before frame 0)."""
    normalised_variable_rate: bool = False
    """The source had a variable frame rate and was put on a constant grid."""
    hdr: bool = False
    """The source signals HDR (PQ or HLG); the segments keep its colour description."""
    segment_codec: str
    """Video codec of the segment inputs (h264, hevc)."""
    audio: PlannedAudio | None = None
    """None when the source has no audio."""
    segments: list[PlannedSegment]


def plan_uri(root: StorageRoot | str, videojob: VideoJobRef) -> str:
    return as_root(root).uri_for(*videojob.parts(), PLAN_FILE)
