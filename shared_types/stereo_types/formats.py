"""Output layouts and the stereo and encoding settings of a conversion."""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field

from stereo_types.base import SpecModel


class OutputFormat(StrEnum):
    """How the left and right views are packed into the output frames."""

    FULL_SBS = "full-sbs"
    HALF_SBS = "half-sbs"
    FULL_TB = "full-tb"
    HALF_TB = "half-tb"
    ANAGLYPH = "anaglyph"
    CROSS_EYED = "cross-eyed"
    VR180 = "vr180"


class VideoCodec(StrEnum):
    H264 = "h264"
    HEVC = "hevc"


class EncoderPreset(StrEnum):
    """x264/x265 speed presets, fastest first."""

    ULTRAFAST = "ultrafast"
    SUPERFAST = "superfast"
    VERYFAST = "veryfast"
    FASTER = "faster"
    FAST = "fast"
    MEDIUM = "medium"
    SLOW = "slow"
    SLOWER = "slower"
    VERYSLOW = "veryslow"
    PLACEBO = "placebo"


class Container(StrEnum):
    """Output container; the value is also the file extension."""

    MP4 = "mp4"
    MKV = "mkv"


class StereoSettings(SpecModel):
    """How depth is estimated and turned into a stereo pair."""

    divergence: float = Field(default=2.0, gt=0, le=10)
    """Strength of the 3D effect, in percent of the frame width."""
    convergence: float = Field(default=0.5, ge=0, le=1)
    """Depth of the screen plane, as in iw3: 0 puts everything in front of the screen,
    1 everything behind it."""
    depth_model: str = Field(
        default="Any_V2_S", min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_]+$"
    )
    """Name of the depth-estimation model the inference engine loads."""
    pre_roll_frames: int = Field(default=0, ge=0, le=120)
    """Frames decoded before a segment's first frame and then dropped, so temporal
    depth engines start warm and segment joins do not flicker."""


class EncodingSettings(SpecModel):
    """Encoder settings for the segment outputs and the final file."""

    codec: VideoCodec = VideoCodec.H264
    """Video codec."""
    crf: int = Field(default=20, ge=0, le=51)
    """Constant rate factor: lower is better quality and larger files."""
    preset: EncoderPreset = EncoderPreset.MEDIUM
    """Encoder speed preset."""
    container: Container = Container.MP4
    """Container of the segment outputs and the final file."""
