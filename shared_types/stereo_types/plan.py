"""The split plan: the contract between the planning Job, the operator and the assemble Job.

The planning Job (the VideoJob's "split" Job) reads the source's packet index, decodes no
picture and writes nothing but this plan, at `plan_uri`. Each segment names the frames it
owns by presentation timestamp (its `window`); its inference Job reads just that part of the
source, with range reads, and writes `output_uri`. The assemble Job joins the outputs in
`index` order and muxes the source's `audio` back in by stream copy. It is JSON, camelCase on
the wire (`to_wire()`), and readers ignore fields they do not know.
"""

from __future__ import annotations

from pydantic import Field

from stereo_types.base import SourceUri, StatusModel, StorageUri
from stereo_types.formats import DEFAULT_PRE_ROLL_FRAMES, PreRollFrames
from stereo_types.layout import StorageRoot, VideoJobRef, as_root
from stereo_types.names import MAX_SEGMENT_INDEX

PLAN_FILE = "plan.json"
SEGMENT_EXTENSION = "mp4"


class GridTiming(StatusModel):
    """How a variable-rate source's frames fall on the constant-rate output grid.

    As ffmpeg's rate filter does in one pass over the source: a frame's slot is
    `round((pts - zero_pts) * time_base * rate)` (halves away from zero), and each slot shows
    the last frame whose slot is at or before it.
    """

    rate_num: int = Field(ge=1)
    """The output grid's rate, rate_num/rate_den (the plan's fps_num/fps_den)."""
    rate_den: int = Field(ge=1)
    """Denominator of the output grid's rate."""
    zero_pts: int
    """Time zero in the stream's ticks: where a single ffmpeg pass starts its clock."""
    start_slot: int
    """The window's first output slot, counted from time zero."""


class SourceWindow(StatusModel):
    """The part of the source one segment decodes, in the source's own timestamps.

    Decoding starts at a keyframe (`seek_seconds`), keeps the frames whose presentation
    timestamps lie in [first_pts, last_pts] (pre-roll first) and stops after
    `pre_roll_frames + frame_count` output frames. Frames before `first_pts` are decoded only
    to reach it (`lead_frames` of them). Open GOPs need nothing more: every kept frame shows
    at or after the keyframe, and leading pictures of the next keyframe are decoded in order.
    """

    stream_index: int = Field(ge=0)
    """The video stream's index in the source."""
    time_base_num: int = Field(ge=1)
    time_base_den: int = Field(ge=1)
    """The stream's time base: the unit of the pts fields."""
    seek_seconds: float | None = Field(default=None, ge=0)
    """Input seek (ffmpeg -ss, from the file's start time) landing on or before the keyframe
    decoding starts from; None: decode from the first packet."""
    first_pts: int
    """First kept frame (the first pre-roll frame, or the first owned one)."""
    last_pts: int
    """Last frame kept; on a normalised variable-rate source, the frame after the last owned
    one, so the rate filter sees where that frame ends."""
    pre_roll_frames: PreRollFrames = DEFAULT_PRE_ROLL_FRAMES
    """Leading output frames that only warm the engine up and are dropped."""
    frame_count: int = Field(ge=1)
    """Output frames the segment owns."""
    grid: GridTiming | None = None
    """Normalised variable-rate source only; None when the frames themselves are the grid."""
    lead_frames: int = Field(default=0, ge=0)
    """Frames decoded before `first_pts`, only to reach it (keyframes rarer than segments)."""
    bytes: int = Field(default=0, ge=0)
    """Video packet bytes from the keyframe to the last kept frame: what a range read fetches."""

    @property
    def output_frames(self) -> int:
        """Frames the decode yields: the pre-roll, then the owned frames."""
        return self.pre_roll_frames + self.frame_count


class PlannedSegment(StatusModel):
    """One segment of the plan."""

    index: int = Field(ge=0, le=MAX_SEGMENT_INDEX)
    input_uri: SourceUri
    """The source itself: the segment reads its window of it."""
    window: SourceWindow
    """Which frames of the source the segment decodes and owns."""
    output_uri: StorageUri
    """Where the engine writes the converted segment (without the pre-roll frames)."""
    start_frame: int = Field(ge=0)
    """First frame of the segment in the (constant-rate) source, after pre-roll."""
    frame_count: int = Field(ge=1)
    """Frames the segment contributes to the output."""
    pre_roll_frames: PreRollFrames = DEFAULT_PRE_ROLL_FRAMES
    """Leading frames of the input that the engine drops again on output."""
    start_seconds: float = Field(ge=0)
    duration_seconds: float = Field(gt=0)


class PlannedAudio(StatusModel):
    """The source's first audio track, muxed by stream copy straight from the source."""

    uri: SourceUri
    """The source."""
    stream_index: int = Field(default=0, ge=0)
    """The audio stream's index in the source."""
    codec: str | None = None
    """Codec name as ffprobe reports it (aac, opus, ...)."""
    offset_seconds: float = 0.0
    """Source audio start minus source video start; the final mux restores it."""
    duration_seconds: float | None = None


class SplitPlan(StatusModel):
    """What the planning step decided for one source."""

    source: str
    """The source as the planning step was given it."""
    source_bytes: int = Field(default=0, ge=0)
    """Size of the source object."""
    fps_num: int = Field(ge=1)
    fps_den: int = Field(ge=1)
    """The constant frame rate fps_num/fps_den of every segment output and the final output."""
    frame_count: int = Field(ge=1)
    """Frames of the final output: the sum of the segments' frame counts."""
    width: int = Field(ge=1)
    height: int = Field(ge=1)
    """Display size of the source (rotation applied)."""
    duration_seconds: float = Field(gt=0)
    segment_seconds: float = Field(gt=0)
    """Segment length the plan was asked for."""
    segment_frames: int = Field(ge=1)
    """Frames per segment (segment_seconds in whole frames); the last one may be shorter."""
    pre_roll_frames: PreRollFrames = DEFAULT_PRE_ROLL_FRAMES
    """Pre-roll asked for; each segment's own is at most this (none before frame 0)."""
    normalised_variable_rate: bool = False
    """The source had a variable frame rate; segments put it on a constant grid."""
    hdr: bool = False
    """The source signals HDR (PQ or HLG); the segments keep its colour description."""
    keyframes: int = Field(default=0, ge=0)
    """Keyframes in the source's video stream."""
    lead_frames: int = Field(default=0, ge=0)
    """Frames decoded only to reach a segment's first frame, summed over the segments."""
    audio: PlannedAudio | None = None
    """None when the source has no audio."""
    segments: list[PlannedSegment]


def plan_uri(root: StorageRoot | str, videojob: VideoJobRef) -> str:
    return as_root(root).uri_for(*videojob.parts(), PLAN_FILE)
