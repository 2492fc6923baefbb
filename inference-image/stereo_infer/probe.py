"""Probing a source video with ffprobe into a typed description.

The source may be a local path or the http URL of ``stereo_infer.source``. With
``count=False`` the probe reads headers only: no packet scan for a container that does not
store its frame count, so it costs a few range reads however long the film.
"""

import re
import subprocess
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from stereo_infer.errors import ProbeError, StereoInferError, ToolMissingError, TransientError
from stereo_infer.ffmpeg import FFMPEG, classify_failure, run_ffprobe_json
from stereo_infer.framerate import FrameRate

HDR_TRANSFERS = frozenset({"smpte2084", "arib-std-b67"})  # PQ and HLG
# showinfo's line for a frame: "... n:   0 pts:   1234 pts_time:..."
_SHOWN_PTS = re.compile(r"\bn:\s*0\s+pts:\s*(-?\d+)")
_PIX_FMT_DEPTH = re.compile(r"p(\d+)(?:le|be)$")
# ffprobe's names for the HDR10 side data.
_MASTERING = "Mastering display metadata"
_LIGHT = "Content light level metadata"


class StreamSummary(BaseModel):
    """Any stream of the source: enough to map it into the output and to name it."""

    model_config = ConfigDict(frozen=True)

    index: int
    type: str
    codec: str | None
    start_time: float = 0.0
    language: str | None = None
    title: str | None = None
    channels: int | None = None
    # Cover art: a one-picture "video" stream.
    attached_pic: bool = False


class MasteringDisplay(BaseModel):
    """SMPTE ST 2086 mastering display colour volume, in the units HEVC's SEI and the
    encoders take: chromaticities in 1/50000, luminance in 1/10000 cd/m2."""

    model_config = ConfigDict(frozen=True)

    red: tuple[int, int]
    green: tuple[int, int]
    blue: tuple[int, int]
    white_point: tuple[int, int]
    max_luminance: int
    min_luminance: int

    @property
    def encoder_value(self) -> str:
        """x265's master-display, x264's mastering-display: G(x,y)B(x,y)R(x,y)WP(x,y)L(max,min)."""
        points = (("G", self.green), ("B", self.blue), ("R", self.red), ("WP", self.white_point))
        coords = "".join(f"{name}({x},{y})" for name, (x, y) in points)
        return f"{coords}L({self.max_luminance},{self.min_luminance})"


class ContentLight(BaseModel):
    """CTA-861.3 content light levels, in cd/m2."""

    model_config = ConfigDict(frozen=True)

    max_content: int
    max_average: int


class HdrMetadata(BaseModel):
    """The static HDR10 metadata a source carries; encoders write it back as SEI."""

    model_config = ConfigDict(frozen=True)

    mastering: MasteringDisplay | None = None
    light: ContentLight | None = None


class VideoInfo(BaseModel):
    model_config = ConfigDict(frozen=True)

    index: int
    codec: str
    width: int
    height: int
    pix_fmt: str | None
    avg_frame_rate: FrameRate | None
    r_frame_rate: FrameRate | None
    # The constant rate the pipeline works at (the probed rate; for a variable
    # rate source, its average rate snapped to a standard one).
    frame_rate: FrameRate
    variable_frame_rate: bool
    # 0 when a header-only probe found no count in the container.
    frame_count: int
    frame_count_method: Literal["container", "packets", "unknown"]
    time_base: Fraction
    duration_seconds: float
    start_time: float
    # Clockwise degrees a player turns the coded picture (display matrix).
    rotation: int
    color_transfer: str | None
    color_primaries: str | None
    color_space: str | None
    color_range: str | None
    hdr: bool
    # Bits per colour sample as decoded: 8, 10, 12...
    bit_depth: int = 8
    hdr_metadata: HdrMetadata | None = None

    @property
    def display_size(self) -> tuple[int, int]:
        if self.rotation in (90, 270):
            return self.height, self.width
        return self.width, self.height


class AudioInfo(BaseModel):
    model_config = ConfigDict(frozen=True)

    index: int
    codec: str | None
    channels: int | None
    sample_rate: int | None
    duration_seconds: float | None
    start_time: float


class MediaInfo(BaseModel):
    model_config = ConfigDict(frozen=True)

    path: str
    container: str
    # The file's start time (ffmpeg's -ss counts from it).
    start_time: float = 0.0
    streams: list[StreamSummary]
    video: VideoInfo
    audio: AudioInfo | None

    @property
    def duration_seconds(self) -> float:
        return self.video.duration_seconds


def probe(path: Path | str, *, count: bool = True) -> MediaInfo:
    """Describe ``path`` (a file or an http URL); ProbeError when it is not a readable video.

    ``count=False`` leaves the frame count 0 and an audio duration None where only a packet
    scan would tell them, and does not decode a first frame.
    """
    source = Path(path) if not str(path).startswith(("http://", "https://")) else str(path)
    if isinstance(source, Path) and not source.is_file():
        raise ProbeError(f"input not found: {source}")
    doc = _ffprobe(["-show_format", "-show_streams", str(source)], source)
    streams = doc.get("streams") or []
    video = _first_video_stream(streams)
    if video is None:
        raise ProbeError(f"no video stream in {source}")
    audio = next((s for s in streams if s.get("codec_type") == "audio"), None)
    fmt = doc.get("format") or {}
    if count:
        # A header-only probe serves a source already planned, whose frames were checked.
        first_frame_pts(source, int(video["index"]))
    return MediaInfo(
        path=str(source),
        container=str(fmt.get("format_name") or "unknown"),
        start_time=_float(fmt.get("start_time")) or 0.0,
        streams=[_stream_summary(s) for s in streams],
        video=_video_info(source, video, fmt, count),
        audio=_audio_info(source, audio, count) if audio is not None else None,
    )


def count_frames(path: Path, stream_index: int = 0) -> int:
    """Exact frame count of one video stream: the container's count, else counted packets."""
    doc = _ffprobe(
        ["-select_streams", str(stream_index), "-show_entries", "stream=nb_frames", str(path)],
        path,
    )
    nb_frames = _int((doc.get("streams") or [{}])[0].get("nb_frames"))
    return nb_frames if nb_frames else _count_packets(path, stream_index)


def _ffprobe(args: list[str], source: Path | str) -> dict[str, Any]:
    try:
        return run_ffprobe_json(args)
    except TransientError:
        raise
    except StereoInferError as exc:
        raise ProbeError(f"cannot read {source}: {exc}") from exc


def _stream_summary(stream: dict[str, Any]) -> StreamSummary:
    tags = {str(k).lower(): v for k, v in (stream.get("tags") or {}).items()}
    return StreamSummary(
        index=int(stream["index"]),
        type=str(stream.get("codec_type")),
        codec=stream.get("codec_name"),
        start_time=_float(stream.get("start_time")) or 0.0,
        language=tags.get("language"),
        title=tags.get("title"),
        channels=_int(stream.get("channels")),
        attached_pic=(stream.get("disposition") or {}).get("attached_pic") == 1,
    )


def _first_video_stream(streams: list[dict[str, Any]]) -> dict[str, Any] | None:
    for stream in streams:
        # Cover art in audio files is a one-picture "video" stream; not a video.
        attached = (stream.get("disposition") or {}).get("attached_pic") == 1
        if stream.get("codec_type") == "video" and not attached:
            return stream
    return None


def first_frame_pts(source: Path | str, stream: int | str) -> int:
    """The timestamp ffmpeg gives the first decoded frame of ``stream`` (an index or a
    specifier such as ``v:0``) in one pass
    over ``source`` (after its own start-time offset); ProbeError when none decodes.

    ffmpeg itself decodes, so packets an edit list discards are skipped as in any pass.
    """
    cmd = [FFMPEG, "-nostdin", "-hide_banner", "-nostats", "-loglevel", "info", "-i", str(source)]
    cmd += ["-map", f"0:{stream}", "-frames:v", "1", "-vf", "showinfo", "-f", "null", "-"]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    except FileNotFoundError as exc:
        raise ToolMissingError(f"{FFMPEG} is not installed") from exc
    if done.returncode != 0:
        raise ProbeError(
            f"cannot read {source}: {classify_failure(FFMPEG, done.returncode, done.stderr)}"
        )
    found = _SHOWN_PTS.search(done.stderr)
    if found is None:
        raise ProbeError(f"no decodable video frame in {source}")
    return int(found.group(1))


def _video_info(
    source: Path | str, stream: dict[str, Any], fmt: dict[str, Any], count: bool
) -> VideoInfo:
    index = int(stream["index"])
    width, height = _int(stream.get("width")), _int(stream.get("height"))
    if not width or not height:
        raise ProbeError(f"video stream of {source} has no picture size")
    avg = FrameRate.parse(stream.get("avg_frame_rate"))
    real = FrameRate.parse(stream.get("r_frame_rate"))
    frame_rate, variable = _working_rate(source, avg, real)
    nb_frames = _int(stream.get("nb_frames"))
    frame_count = nb_frames or (_count_packets(source, index) if count else 0)
    if count and frame_count <= 0:
        raise ProbeError(f"video stream of {source} has no frames")
    method = "container" if nb_frames else ("packets" if count else "unknown")
    start = _float(stream.get("start_time")) or 0.0
    transfer = stream.get("color_transfer")
    return VideoInfo(
        index=index,
        codec=str(stream.get("codec_name") or "unknown"),
        width=width,
        height=height,
        pix_fmt=stream.get("pix_fmt"),
        avg_frame_rate=avg,
        r_frame_rate=real,
        frame_rate=frame_rate,
        variable_frame_rate=variable,
        frame_count=frame_count,
        frame_count_method=method,
        time_base=_time_base(source, stream),
        duration_seconds=_stream_duration(stream, start) or _float(fmt.get("duration")) or 0.0,
        start_time=start,
        rotation=_rotation(stream),
        color_transfer=transfer,
        color_primaries=stream.get("color_primaries"),
        color_space=stream.get("color_space"),
        color_range=stream.get("color_range"),
        hdr=transfer in HDR_TRANSFERS,
        bit_depth=_bit_depth(stream),
        hdr_metadata=_hdr_metadata(source, stream) if transfer in HDR_TRANSFERS else None,
    )


def _bit_depth(stream: dict[str, Any]) -> int:
    """The decoder's bits per sample, else the pixel format's (yuv420p10le: 10)."""
    bits = _int(stream.get("bits_per_raw_sample"))
    if bits:
        return bits
    found = _PIX_FMT_DEPTH.search(str(stream.get("pix_fmt") or ""))
    return int(found.group(1)) if found else 8


def _hdr_metadata(source: Path | str, stream: dict[str, Any]) -> HdrMetadata | None:
    """Mastering display and content light levels from the container (Matroska, mp4 boxes),
    else from the first frame's SEI (HEVC carries them in the bitstream)."""
    sides = stream.get("side_data_list") or []
    if not _hdr_sides(sides):
        doc = _ffprobe(
            [
                *("-select_streams", str(stream["index"]), "-read_intervals", "%+#1"),
                *("-show_frames", "-show_entries", "frame=side_data_list", str(source)),
            ],
            source,
        )
        frames = doc.get("frames") or [{}]
        sides = frames[0].get("side_data_list") or []
    found = _hdr_sides(sides)
    mastering = found.get(_MASTERING)
    light = found.get(_LIGHT)
    if mastering is None and light is None:
        return None
    return HdrMetadata(
        mastering=_mastering(mastering) if mastering else None,
        light=_light(light) if light else None,
    )


def _hdr_sides(sides: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    kinds = (_MASTERING, _LIGHT)
    return {s["side_data_type"]: s for s in sides if s.get("side_data_type") in kinds}


def _light(side: dict[str, Any]) -> ContentLight:
    return ContentLight(
        max_content=_int(side.get("max_content")) or 0,
        max_average=_int(side.get("max_average")) or 0,
    )


def _mastering(side: dict[str, Any]) -> MasteringDisplay | None:
    def scaled(key: str, unit: int) -> int:
        return round(Fraction(str(side.get(key) or "0")) * unit)

    def point(name: str) -> tuple[int, int]:
        return scaled(f"{name}_x", 50000), scaled(f"{name}_y", 50000)

    try:
        return MasteringDisplay(
            red=point("red"),
            green=point("green"),
            blue=point("blue"),
            white_point=point("white_point"),
            max_luminance=scaled("max_luminance", 10000),
            min_luminance=scaled("min_luminance", 10000),
        )
    except (ValueError, ZeroDivisionError):
        # A malformed or partial box: better none than a wrong one.
        return None


def _time_base(source: Path | str, stream: dict[str, Any]) -> Fraction:
    num, _, den = str(stream.get("time_base") or "").partition("/")
    try:
        value = Fraction(int(num), int(den))
    except (ValueError, ZeroDivisionError):
        raise ProbeError(f"video stream of {source} has no time base") from None
    if value <= 0:
        raise ProbeError(f"video stream of {source} has no time base")
    return value


def _working_rate(
    source: Path | str, avg: FrameRate | None, real: FrameRate | None
) -> tuple[FrameRate, bool]:
    """The constant rate to work at, and whether the source's rate varies."""
    if avg is not None and real is not None and not avg.close_to(real):
        # The average off the base rate (the finest grid that holds all
        # timestamps) means the timestamps are not on a fixed grid.
        return avg.snapped(), True
    rate = real or avg
    if rate is None:
        raise ProbeError(f"video stream of {source} has no frame rate")
    return rate, False


def _audio_info(source: Path | str, stream: dict[str, Any], count: bool) -> AudioInfo:
    index = int(stream["index"])
    start = _float(stream.get("start_time")) or 0.0
    return AudioInfo(
        index=index,
        codec=stream.get("codec_name"),
        channels=_int(stream.get("channels")),
        sample_rate=_int(stream.get("sample_rate")),
        duration_seconds=_stream_duration(stream, start)
        or (_packet_span(source, index) if count else None),
        start_time=start,
    )


def _stream_duration(stream: dict[str, Any], start: float) -> float | None:
    duration = _float(stream.get("duration"))
    if duration:
        return duration
    # Matroska has no per-stream duration field; ffmpeg's muxer writes a
    # DURATION tag holding the stream's end timestamp.
    tag = (stream.get("tags") or {}).get("DURATION")
    end = _hms_seconds(tag) if isinstance(tag, str) else None
    return end - start if end else None


def _count_packets(source: Path | str, index: int) -> int:
    doc = _ffprobe(
        [
            "-select_streams",
            str(index),
            "-count_packets",
            "-show_entries",
            "stream=nb_read_packets",
            str(source),
        ],
        source,
    )
    return _int((doc.get("streams") or [{}])[0].get("nb_read_packets")) or 0


def _packet_span(source: Path | str, index: int) -> float | None:
    """Duration from first packet start to last packet end (demux only, no decode)."""
    doc = _ffprobe(
        [
            "-select_streams",
            str(index),
            "-show_entries",
            "packet=pts_time,duration_time",
            str(source),
        ],
        source,
    )
    packets = [p for p in doc.get("packets") or [] if _float(p.get("pts_time")) is not None]
    if not packets:
        return None
    first = _float(packets[0].get("pts_time")) or 0.0
    last = packets[-1]
    return (
        (_float(last.get("pts_time")) or 0.0) + (_float(last.get("duration_time")) or 0.0) - first
    )


def _rotation(stream: dict[str, Any]) -> int:
    for side in stream.get("side_data_list") or []:
        if "rotation" in side:
            # The display matrix angle is counter-clockwise.
            return _quarter_turns(-float(side["rotation"]))
    tag = (stream.get("tags") or {}).get("rotate")
    return _quarter_turns(float(tag)) if tag is not None else 0


def _quarter_turns(degrees: float) -> int:
    return (round(degrees / 90) * 90) % 360


def _hms_seconds(text: str) -> float | None:
    try:
        hours, minutes, seconds = text.split(":")
        return int(hours) * 3600 + int(minutes) * 60 + float(seconds)
    except ValueError:
        return None


def _int(value: object) -> int | None:
    try:
        return int(str(value))
    except (TypeError, ValueError):
        return None


def _float(value: object) -> float | None:
    try:
        return float(str(value))
    except (TypeError, ValueError):
        return None
