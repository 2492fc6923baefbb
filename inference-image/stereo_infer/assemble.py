"""Joining converted segments by stream copy and muxing the source's audio back in.

The audio comes straight from the source (a path or the URL of ``stereo_infer.source``), by
stream copy: no copy of it is made before the GPUs start, and it is bit-exact.
"""

import os
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from stereo_infer.errors import AssembleInputError, BadInputError, MediaError
from stereo_infer.ffmpeg import run_ffmpeg, run_ffprobe_json
from stereo_infer.framerate import plan_rate
from stereo_infer.probe import count_frames
from stereo_infer.progress import ProgressReporter
from stereo_types.plan import SplitPlan

# Audio codecs the mp4 muxer takes as they are.
MP4_AUDIO_CODECS = frozenset({"aac", "mp3", "ac3", "eac3", "alac", "opus", "flac"})
# Sync offsets below this are timestamp noise, not a real delay.
_OFFSET_EPSILON_S = 1e-4


class Container(StrEnum):
    MP4 = "mp4"
    MKV = "mkv"


_MUXERS = {Container.MP4: "mp4", Container.MKV: "matroska"}
_SUFFIXES = {".mp4": Container.MP4, ".m4v": Container.MP4, ".mkv": Container.MKV}


@dataclass(frozen=True)
class SegmentStream:
    path: Path
    codec: str
    width: int
    height: int
    pix_fmt: str | None
    has_b_frames: int
    frame_count: int


@dataclass(frozen=True)
class AssembleResult:
    output: Path
    container: Container
    frame_count: int
    segments: int
    with_audio: bool


def container_for(output: Path, explicit: Container | str | None = None) -> Container:
    if explicit is not None:
        try:
            return Container(explicit)
        except ValueError:
            raise BadInputError(f"unknown container {explicit!r}; use mp4 or mkv") from None
    try:
        return _SUFFIXES[output.suffix.lower()]
    except KeyError:
        raise BadInputError(
            f"cannot tell the container from {output.name!r}; name it .mp4 or .mkv"
        ) from None


def check_plan(plan: SplitPlan) -> None:
    """The plan's segments, in order, cover its frames once: 0, 1, 2, ... back to back."""
    next_frame = 0
    for position, seg in enumerate(plan.segments):
        if seg.index != position or seg.start_frame != next_frame:
            raise AssembleInputError(
                f"plan segment {seg.index} at position {position} starts at frame"
                f" {seg.start_frame}; expected segment {position} at frame {next_frame}"
            )
        next_frame += seg.frame_count
    if not plan.segments or next_frame != plan.frame_count:
        raise AssembleInputError(
            f"plan segments hold {next_frame} frames, the plan {plan.frame_count}"
        )


def check_segments(plan: SplitPlan, files: Sequence[Path]) -> list[SegmentStream]:
    """Every segment output exists, holds its planned frames, and all share codec and size."""
    check_plan(plan)
    if len(files) != len(plan.segments):
        raise AssembleInputError(f"{len(files)} segment files for {len(plan.segments)} segments")
    streams: list[SegmentStream] = []
    for seg, path in zip(plan.segments, files, strict=True):
        if not path.is_file():
            raise AssembleInputError(f"segment {seg.index} output is missing: {path}")
        stream = _segment_stream(path)
        if stream.frame_count != seg.frame_count:
            raise AssembleInputError(
                f"segment {seg.index} output has {stream.frame_count} frames,"
                f" planned {seg.frame_count} (was the pre-roll dropped?): {path}"
            )
        if stream.has_b_frames:
            raise AssembleInputError(
                f"segment {seg.index} output has B-frames; engines must encode without: {path}"
            )
        first = streams[0] if streams else stream
        mismatch = [
            f"{name} {getattr(stream, name)} != {getattr(first, name)}"
            for name in ("codec", "width", "height", "pix_fmt")
            if getattr(stream, name) != getattr(first, name)
        ]
        if mismatch:
            raise AssembleInputError(
                f"segment {seg.index} differs from segment {plan.segments[0].index}:"
                f" {', '.join(mismatch)} ({path})"
            )
        streams.append(stream)
    return streams


def assemble(
    plan: SplitPlan,
    segment_files: Sequence[Path],
    output: Path,
    *,
    audio: Path | str | None = None,
    container: Container | str | None = None,
    show_progress: bool = True,
) -> AssembleResult:
    """Join ``segment_files`` (in plan order) into ``output``, with the plan's audio stream of
    ``audio`` (the source) muxed in sync.

    The output appears under its final name only once complete.
    """
    kind = container_for(output, container)
    check_segments(plan, segment_files)
    if isinstance(audio, Path) and not audio.is_file():
        raise AssembleInputError(f"audio source is missing: {audio}")
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(f".{output.name}.partial")
    joined = output.with_name(f".{output.name}.video.mp4")
    concat_list = output.with_name(f".{output.name}.concat.txt")
    offset = plan.audio.offset_seconds if plan.audio is not None and audio is not None else 0.0
    try:
        concat_list.write_text("".join(_concat_line(p) for p in segment_files), encoding="utf-8")
        progress = ProgressReporter("assemble", plan.frame_count) if show_progress else None
        # First the video alone, into mp4: ffmpeg 5.1 writes setts's timestamps into
        # Matroska without rescaling them, so the final container is a second, plain remux.
        run_ffmpeg(
            [
                *("-f", "concat", "-safe", "0", "-i", str(concat_list)),
                *("-map", "0:v:0", "-c:v", "copy"),
                *("-bsf:v", _grid_timestamps(plan), "-f", "mp4", str(joined)),
            ],
            progress=progress,
        )
        run_ffmpeg(_mux_args(plan, joined, audio, offset, kind, partial))
        frames = count_frames(partial)
        if progress is not None:
            progress.finish(frames)
        if frames != plan.frame_count:
            raise MediaError(f"joined video has {frames} frames, planned {plan.frame_count}")
        os.replace(partial, output)
    finally:
        partial.unlink(missing_ok=True)
        joined.unlink(missing_ok=True)
        concat_list.unlink(missing_ok=True)
    return AssembleResult(
        output=output,
        container=kind,
        frame_count=frames,
        segments=len(segment_files),
        with_audio=audio is not None,
    )


def _mux_args(
    plan: SplitPlan,
    video: Path,
    audio: Path | str | None,
    offset: float,
    kind: Container,
    target: Path,
) -> list[str]:
    """The joined video and the source's audio track, by stream copy, into ``kind``.

    Audio that starts before the video delays the video; audio that starts later is moved.
    """
    video_delay = -offset if offset < -_OFFSET_EPSILON_S else 0.0
    inputs = ["-itsoffset", f"{video_delay:.6f}"] if video_delay else []
    inputs += ["-i", str(video)]
    outputs = ["-map", "0:v:0", "-c:v", "copy"]
    if audio is not None:
        stream = plan.audio.stream_index if plan.audio is not None else 0
        source = _audio_source(audio, stream)
        # ffmpeg already places the track at its start less the file's; move it to where
        # the (possibly delayed) video needs it.
        shift = max(offset, 0.0) - source.position
        if abs(shift) > _OFFSET_EPSILON_S:
            inputs += ["-itsoffset", f"{shift:.6f}"]
        inputs += ["-i", str(audio)]
        # Both streams are muxed whole; no -shortest, which would cut the audio.
        outputs += ["-map", f"1:{stream}", *_audio_codec_args(source.codec, kind)]
    if kind is Container.MP4:
        outputs += ["-movflags", "+faststart"]
    return [*inputs, *outputs, "-f", _MUXERS[kind], str(target)]


def _grid_timestamps(plan: SplitPlan) -> str:
    """``setts`` filter putting frame N at exactly N / rate.

    The concat demuxer offsets each file by its container duration, which mp4
    rounds to milliseconds; at rates like 30000/1001 the error would build up
    over many segments. Without B-frames pts == dts, so one expression sets both.
    """
    rate = plan_rate(plan)
    return f"setts=ts=N*{rate.den}/{rate.num}/TB"


def _concat_line(path: Path) -> str:
    # The concat demuxer's quoting: close the quote, escape, reopen.
    escaped = str(path.resolve()).replace("'", "'\\''")
    return f"file '{escaped}'\n"


def _segment_stream(path: Path) -> SegmentStream:
    doc = run_ffprobe_json(
        [
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=index,codec_name,width,height,pix_fmt,has_b_frames",
            str(path),
        ]
    )
    streams = doc.get("streams") or []
    if not streams:
        raise AssembleInputError(f"no video stream in segment output {path}")
    s = streams[0]
    return SegmentStream(
        path=path,
        codec=str(s.get("codec_name")),
        width=int(s.get("width") or 0),
        height=int(s.get("height") or 0),
        pix_fmt=s.get("pix_fmt"),
        has_b_frames=int(s.get("has_b_frames") or 0),
        frame_count=count_frames(path, int(s.get("index") or 0)),
    )


@dataclass(frozen=True)
class _AudioSource:
    codec: str | None
    # Where a plain ffmpeg pass puts the track: its start less the file's start.
    position: float


def _audio_source(audio: Path | str, stream: int) -> _AudioSource:
    doc = run_ffprobe_json(
        [
            "-show_entries",
            "stream=index,codec_type,codec_name,start_time:format=start_time",
            str(audio),
        ]
    )
    streams = [
        s
        for s in doc.get("streams") or []
        if s.get("index") == stream and s.get("codec_type") == "audio"
    ]
    if not streams:
        raise AssembleInputError(f"no audio stream {stream} in {audio}")
    file_start = _seconds((doc.get("format") or {}).get("start_time"))
    return _AudioSource(
        codec=streams[0].get("codec_name"),
        position=_seconds(streams[0].get("start_time")) - file_start,
    )


def _seconds(value: object) -> float:
    try:
        return float(str(value))
    except ValueError:
        return 0.0


def _audio_codec_args(codec: str | None, kind: Container) -> list[str]:
    if kind is Container.MP4 and codec not in MP4_AUDIO_CODECS:
        # mp4 cannot carry it (e.g. PCM): the one case where audio is re-encoded.
        return ["-c:a", "aac", "-b:a", "256k"]
    return ["-c:a", "copy"]
