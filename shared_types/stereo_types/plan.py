"""The split plan: the contract between the split Job, the operator and the assemble Job.

The split Job writes it next to the segment inputs (`plan_uri`); the operator creates one
Segment per entry; the assemble Job joins the outputs in `index` order.
"""

from __future__ import annotations

from pydantic import Field

from stereo_types.base import StatusModel, StorageUri
from stereo_types.layout import StorageRoot, VideoJobRef, as_root

PLAN_FILE = "plan.json"
SEGMENT_EXTENSION = "mp4"


class PlannedSegment(StatusModel):
    """One segment as the split step cut it."""

    index: int = Field(ge=0)
    input_uri: StorageUri
    """The segment's frames, after any pre-roll frames, re-encoded to start on a keyframe."""
    start_frame: int = Field(ge=0)
    """First frame of the segment in the (constant-rate) source, after pre-roll."""
    frame_count: int = Field(ge=1)
    """Frames the segment contributes to the output."""
    pre_roll_frames: int = Field(default=0, ge=0)
    """Leading frames of the input that the engine drops again on output."""
    start_seconds: float = Field(ge=0)
    duration_seconds: float = Field(gt=0)


class SplitPlan(StatusModel):
    """What the split step produced from one source."""

    source: str
    fps_num: int = Field(ge=1)
    fps_den: int = Field(ge=1)
    frame_count: int = Field(ge=1)
    width: int = Field(ge=1)
    height: int = Field(ge=1)
    duration_seconds: float = Field(gt=0)
    audio_uri: StorageUri | None = None
    """The source's audio track kept aside for the final mux; None when it has none."""
    segments: list[PlannedSegment]


def plan_uri(root: StorageRoot | str, videojob: VideoJobRef) -> str:
    return as_root(root).uri_for(*videojob.parts(), PLAN_FILE)
