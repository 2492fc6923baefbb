"""Video encoder settings shared by the splitter and the engines."""

from __future__ import annotations

import functools
import subprocess
from dataclasses import dataclass

from stereo_infer.errors import BadInputError
from stereo_infer.ffmpeg import FFMPEG
from stereo_infer.framerate import FrameRate
from stereo_infer.probe import HdrMetadata, VideoInfo
from stereo_infer.settings import checked
from stereo_types.formats import (
    DEFAULT_CODEC,
    DEFAULT_ENCODER,
    CodecChoice,
    Crf,
    Encoder,
    EncoderChoice,
    EncoderPreset,
    PresetChoice,
    VideoCodec,
)

# (encoder setting, codec as the VideoJob spells it and ffprobe reports it) -> ffmpeg encoder.
ENCODERS = {
    (Encoder.SOFTWARE.value, VideoCodec.H264.value): "libx264",
    (Encoder.SOFTWARE.value, VideoCodec.HEVC.value): "libx265",
    (Encoder.NVENC.value, VideoCodec.H264.value): "h264_nvenc",
    (Encoder.NVENC.value, VideoCodec.HEVC.value): "hevc_nvenc",
}
# x264's speed presets onto NVENC's p1 (fastest) to p7; its default p4 is x264's medium.
NVENC_PRESETS = {
    EncoderPreset.ULTRAFAST.value: "p1",
    EncoderPreset.SUPERFAST.value: "p2",
    EncoderPreset.VERYFAST.value: "p3",
    EncoderPreset.FASTER.value: "p3",
    EncoderPreset.FAST.value: "p4",
    EncoderPreset.MEDIUM.value: "p4",
    EncoderPreset.SLOW.value: "p5",
    EncoderPreset.SLOWER.value: "p6",
    EncoderPreset.VERYSLOW.value: "p7",
    EncoderPreset.PLACEBO.value: "p7",
}


@dataclass(frozen=True)
class VideoEncoding:
    codec: str = DEFAULT_CODEC.value
    # None means lossless: the segments are an intermediate, so the engine's
    # output should be the only lossy generation.
    crf: int | None = None
    # The lossless intermediate's; a VideoJob's default is the setting's.
    preset: str = "veryfast"
    encoder: str = DEFAULT_ENCODER.value

    def __post_init__(self) -> None:
        # The VideoJob's rules for each setting (stereo_types.formats).
        checked("codec", CodecChoice, self.codec)
        if self.crf is not None:
            checked("crf", Crf, self.crf)
        checked("preset", PresetChoice, self.preset)
        checked("encoder", EncoderChoice, self.encoder)

    @property
    def ffmpeg_encoder(self) -> str:
        return ENCODERS[(self.encoder, self.codec)]

    def available(self) -> VideoEncoding:
        """This encoding, once this machine's ffmpeg has opened its encoder; a BadInputError
        naming the encoder otherwise, before any frame is decoded or model loaded."""
        if self.encoder != Encoder.SOFTWARE.value and not encoder_opens(self.ffmpeg_encoder):
            raise BadInputError(
                f"encoder {self.encoder!r} needs ffmpeg's {self.ffmpeg_encoder}, which cannot "
                "run here (not built in, or no NVIDIA GPU and driver); use encoder 'software'"
            )
        return self

    def args(self, rate: FrameRate, color_of: VideoInfo | None = None) -> list[str]:
        """Output options for one video stream at a constant ``rate``.

        B-frames are off so that pts == dts and every segment starts at 0 with no
        edit list; with B-frames the concat demuxer shifted timestamps.
        ``passthrough`` stops ffmpeg from dropping or duplicating frames: the
        filter graph has already put them on an exact grid.
        """
        args = ["-c:v", self.ffmpeg_encoder, "-bf", "0"]
        args += ["-r", str(rate), "-fps_mode", "passthrough"]
        if self.encoder == Encoder.NVENC.value:
            args += self._nvenc_args()
        else:
            args += self._software_args(color_of)
        if color_of is not None:
            args += color_args(color_of)
        return args

    def _nvenc_args(self) -> list[str]:
        """NVENC's constant-quality mode at the setting's CRF. Unlike x264/x265 it writes no
        HDR10 SEI from options: only the colour description is carried."""
        args = ["-preset", NVENC_PRESETS[self.preset]]
        if self.crf is None:
            args += ["-tune", "lossless"]
        else:
            # NVENC reads cq 0 as "choose for me", not as best quality.
            args += ["-rc", "vbr", "-cq", str(max(self.crf, 1)), "-b:v", "0"]
        # NVENC writes its parameter sets in-band only without a global header, which mp4
        # and mkv ask for: copy them in front of every keyframe, so segments encoded apart
        # still decode after a stream-copy join.
        return [*args, "-bsf:v", "dump_extra=freq=keyframe"]

    def _software_args(self, color_of: VideoInfo | None) -> list[str]:
        args = ["-preset", self.preset]
        hdr = color_of.hdr_metadata if color_of is not None else None
        # Parameter sets in-band at every keyframe: segments encoded by separate
        # encoder instances still decode after a stream-copy join.
        if self.codec == "h264":
            args += ["-qp", "0"] if self.crf is None else ["-crf", str(self.crf)]
            params = ["repeat-headers=1", *_hdr_params(hdr, "mastering-display", "cll")]
            args += ["-x264-params", ":".join(params)]
        else:
            args += [] if self.crf is None else ["-crf", str(self.crf)]
            params = ["repeat-headers=1", "log-level=error"]
            params += ["lossless=1"] if self.crf is None else []
            hdr10 = _hdr_params(hdr, "master-display", "max-cll")
            params += [*hdr10, "hdr10=1"] if hdr10 else []
            args += ["-x265-params", ":".join(params)]
        return args


@functools.cache
def encoder_opens(name: str) -> bool:
    """Whether ffmpeg can open encoder ``name``: hardware encoders are often built in (listed
    by ``ffmpeg -encoders``) yet fail to open without their device, so encode one frame."""
    probe = [FFMPEG, "-hide_banner", "-loglevel", "error", "-f", "lavfi"]
    probe += ["-i", "color=size=256x256:duration=0.04", "-frames:v", "1", "-c:v", name]
    try:
        result = subprocess.run([*probe, "-f", "null", "-"], capture_output=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0


def _hdr_params(hdr: HdrMetadata | None, mastering_key: str, light_key: str) -> list[str]:
    """The source's HDR10 metadata as encoder parameters (written as SEI at each keyframe)."""
    if hdr is None:
        return []
    params = [f"{mastering_key}={hdr.mastering.encoder_value}"] if hdr.mastering else []
    if hdr.light:
        params.append(f"{light_key}={hdr.light.max_content},{hdr.light.max_average}")
    return params


def color_args(video: VideoInfo) -> list[str]:
    """Carry the source's colour description (HDR signalling above all) to the output."""
    pairs = (
        ("-color_primaries", video.color_primaries),
        ("-color_trc", video.color_transfer),
        ("-colorspace", video.color_space),
        ("-color_range", video.color_range),
    )
    return [arg for flag, value in pairs if value and value != "unknown" for arg in (flag, value)]
