"""Output layouts and the stereo and encoding settings of a conversion.

Each setting's rule (bounds or choices) and default is defined here once, and every reader
takes it from here: the VideoJob and Segment models (so the CRDs and the operator),
`stereo-infer` (convert, plan, serve, preview), the inference server's requests and stereoctl.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import StringConstraints

from stereo_types.base import Rule, SpecModel, between, one_of


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


class Encoder(StrEnum):
    """Which implementation encodes the video."""

    SOFTWARE = "software"
    """x264 or x265, on the CPU."""
    NVENC = "nvenc"
    """NVIDIA's hardware encoder (h264_nvenc, hevc_nvenc), on the GPU."""


class Container(StrEnum):
    """Output container; the value is also the file extension."""

    MP4 = "mp4"
    MKV = "mkv"


FormatChoice = Annotated[OutputFormat, one_of(OutputFormat)]
DEFAULT_FORMAT = OutputFormat.FULL_SBS

Divergence = Annotated[float, between(float, gt=0, le=10)]
DEFAULT_DIVERGENCE = 2.0

Convergence = Annotated[float, between(float, ge=0, le=1)]
DEFAULT_CONVERGENCE = 0.5

DepthModel = Annotated[
    str,
    Rule(
        "1 to 64 letters, digits or '_'",
        (StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_]+$"),),
    ),
]
# Outside a VideoJob an omitted model means the engine's default, which is this one too
# (the builtin engine falls back to its weight-free model where the weights are missing).
DEFAULT_DEPTH_MODEL = "Any_V2_S"

MAX_PRE_ROLL_FRAMES = 120
PreRollFrames = Annotated[int, between(int, ge=0, le=MAX_PRE_ROLL_FRAMES)]
# Where no depth model carries state from frame to frame (and for stereo-infer by hand).
DEFAULT_PRE_ROLL_FRAMES = 0
# The builtin engine's Depth Anything models smooth their depth range with a moving average
# (weight 0.8 on the past): after 21 frames it has forgotten where it started to 1 %, so a
# segment given 21 frames of pre-roll matches one single pass at its seam.
DEPTH_ANYTHING_WARM_UP_FRAMES = 21
TEMPORAL_DEPTH_MODELS = frozenset({"Any_V2_S", "Any_V2_B", "Any_V2_L"})

CodecChoice = Annotated[VideoCodec, one_of(VideoCodec)]
DEFAULT_CODEC = VideoCodec.H264

MAX_CRF = 51
Crf = Annotated[int, between(int, ge=0, le=MAX_CRF)]
DEFAULT_CRF = 20

PresetChoice = Annotated[EncoderPreset, one_of(EncoderPreset)]
DEFAULT_PRESET = EncoderPreset.MEDIUM

EncoderChoice = Annotated[Encoder, one_of(Encoder)]
DEFAULT_ENCODER = Encoder.SOFTWARE

ContainerChoice = Annotated[Container, one_of(Container)]
DEFAULT_CONTAINER = Container.MP4


class StereoSettings(SpecModel):
    """How depth is estimated and turned into a stereo pair."""

    divergence: Divergence = DEFAULT_DIVERGENCE
    """Strength of the 3D effect, in percent of the frame width."""
    convergence: Convergence = DEFAULT_CONVERGENCE
    """Depth of the screen plane, as in iw3: 0 puts everything in front of the screen,
    1 everything behind it."""
    depth_model: DepthModel = DEFAULT_DEPTH_MODEL
    """Name of the depth-estimation model the inference engine loads."""
    pre_roll_frames: PreRollFrames | None = None
    """Frames decoded before a segment's first frame and then dropped, so temporal
    depth engines start warm and segment joins do not flicker. Default: what the depth
    model needs (21 for the builtin engine's Depth Anything models, 0 otherwise)."""


class EncodingSettings(SpecModel):
    """Encoder settings for the segment outputs and the final file."""

    codec: CodecChoice = DEFAULT_CODEC
    """Video codec."""
    crf: Crf = DEFAULT_CRF
    """Constant rate factor: lower is better quality and larger files."""
    preset: PresetChoice = DEFAULT_PRESET
    """Encoder speed preset (NVENC: mapped onto its presets p1 to p7)."""
    encoder: EncoderChoice = DEFAULT_ENCODER
    """Software (x264/x265) or NVIDIA's hardware encoder; 'nvenc' fails the segment at once
    where the inference node's ffmpeg cannot open it."""
    container: ContainerChoice = DEFAULT_CONTAINER
    """Container of the segment outputs and the final file."""
