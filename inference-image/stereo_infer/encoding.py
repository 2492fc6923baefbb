"""Video encoder settings shared by the splitter and the engines."""

from dataclasses import dataclass

from stereo_infer.framerate import FrameRate
from stereo_infer.probe import HdrMetadata, VideoInfo
from stereo_infer.settings import checked
from stereo_types.formats import DEFAULT_CODEC, CodecChoice, Crf, PresetChoice, VideoCodec

# Codec names as the VideoJob spells them (and ffprobe reports them) -> ffmpeg encoder.
ENCODERS = {VideoCodec.H264.value: "libx264", VideoCodec.HEVC.value: "libx265"}


@dataclass(frozen=True)
class VideoEncoding:
    codec: str = DEFAULT_CODEC.value
    # None means lossless: the segments are an intermediate, so the engine's
    # output should be the only lossy generation.
    crf: int | None = None
    # The lossless intermediate's; a VideoJob's default is the setting's.
    preset: str = "veryfast"

    def __post_init__(self) -> None:
        # The VideoJob's rules for each setting (stereo_types.formats).
        checked("codec", CodecChoice, self.codec)
        if self.crf is not None:
            checked("crf", Crf, self.crf)
        checked("preset", PresetChoice, self.preset)

    @property
    def encoder(self) -> str:
        return ENCODERS[self.codec]

    def args(self, rate: FrameRate, color_of: VideoInfo | None = None) -> list[str]:
        """Output options for one video stream at a constant ``rate``.

        B-frames are off so that pts == dts and every segment starts at 0 with no
        edit list; with B-frames the concat demuxer shifted timestamps.
        ``passthrough`` stops ffmpeg from dropping or duplicating frames: the
        filter graph has already put them on an exact grid.
        """
        args = ["-c:v", self.encoder, "-bf", "0", "-r", str(rate), "-fps_mode", "passthrough"]
        args += ["-preset", self.preset]
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
        if color_of is not None:
            args += color_args(color_of)
        return args


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
