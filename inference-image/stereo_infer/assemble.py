"""Joining converted segments by stream copy and muxing the source's other tracks back in.

Audio, subtitles, chapters and metadata come straight from the source (a path or the URL of
``stereo_infer.source``), by stream copy where the container allows (``stereo_infer.tracks``):
no copy of them is made before the GPUs start, and they are bit-exact.
"""

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from stereo_infer.engines.formats import StereoFormat
from stereo_infer.errors import AssembleInputError, BadInputError, MediaError
from stereo_infer.ffmpeg import run_ffmpeg, run_ffprobe_json
from stereo_infer.framerate import plan_rate
from stereo_infer.probe import MediaInfo, count_frames, probe
from stereo_infer.progress import ProgressReporter
from stereo_infer.settings import checked
from stereo_infer.stereo_tags import tag_stereo
from stereo_infer.tracks import Container, OutputTrack, output_tracks
from stereo_types.formats import ContainerChoice
from stereo_types.plan import SplitPlan

# Sync offsets below this are timestamp noise, not a real delay.
_OFFSET_EPSILON_S = 1e-4

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
    # The source's tracks beside the video in the output (cover art included).
    tracks: int
    audio_tracks: int
    subtitle_tracks: int


def container_for(output: Path, explicit: Container | str | None = None) -> Container:
    if explicit is not None:
        return Container(checked("container", ContainerChoice, explicit))
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
    source: Path | str | None = None,
    container: Container | str | None = None,
    stereo_format: StereoFormat | None = None,
    show_progress: bool = True,
) -> AssembleResult:
    """Join ``segment_files`` (in plan order) into ``output``, with every other track of
    ``source`` (a path or the URL of ``stereo_infer.source``), its chapters and metadata
    muxed in sync, and tagged with the stereo layout of ``stereo_format``
    (``stereo_infer.stereo_tags``).

    The output appears under its final name only once complete.
    """
    kind = container_for(output, container)
    check_segments(plan, segment_files)
    if isinstance(source, Path) and not source.is_file():
        raise AssembleInputError(f"source is missing: {source}")
    tracks = _read_source(source, plan, kind) if source is not None else None
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(f".{output.name}.partial")
    joined = output.with_name(f".{output.name}.video.mp4")
    concat_list = output.with_name(f".{output.name}.concat.txt")
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
        if stereo_format is not None:
            tag_stereo(joined, stereo_format)
        run_ffmpeg(_mux_args(joined, tracks, kind, partial))
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
    kept = tracks.tracks if tracks is not None else []
    return AssembleResult(
        output=output,
        container=kind,
        frame_count=frames,
        segments=len(segment_files),
        tracks=len(kept),
        audio_tracks=sum(t.kind == "audio" for t in kept),
        subtitle_tracks=sum(t.kind == "subtitle" for t in kept),
    )


@dataclass(frozen=True)
class _Source:
    """The source's tracks for the output, and where they go in time."""

    url: Path | str
    info: MediaInfo
    tracks: list[OutputTrack]
    # Seconds the video starts after the output's start: audio that begins before it.
    video_delay: float
    # ffmpeg's -itsoffset for the source: it places a stream at its start less the file's.
    shift: float


def _read_source(url: Path | str, plan: SplitPlan, kind: Container) -> _Source:
    info = probe(url, count=False)
    planned = plan.audio.stream_index if plan.audio is not None else None
    if planned is not None and not any(
        s.index == planned and s.type == "audio" for s in info.streams
    ):
        # Replaced after planning?
        raise AssembleInputError(f"no audio stream {planned} in {url}")
    tracks = output_tracks(info, kind)
    kept = {t.source_index for t in tracks}
    video_start = info.video.start_time
    audio_starts = [s.start_time for s in info.streams if s.type == "audio" and s.index in kept]
    delay = max(0.0, video_start - min(audio_starts, default=video_start))
    delay = delay if delay > _OFFSET_EPSILON_S else 0.0
    return _Source(url, info, tracks, delay, delay + info.start_time - video_start)


def _mux_args(video: Path, source: _Source | None, kind: Container, target: Path) -> list[str]:
    """The joined video and the source's other tracks, chapters and metadata, into ``kind``.

    Tracks that start before the video delay the video; the source as a whole is moved so
    that each track keeps its distance from the video's first frame.
    """
    inputs = ["-itsoffset", f"{source.video_delay:.6f}"] if source and source.video_delay else []
    inputs += ["-i", str(video)]
    outputs = ["-map", "0:v:0", "-c:v", "copy"]
    if source is not None:
        if abs(source.shift) > _OFFSET_EPSILON_S:
            inputs += ["-itsoffset", f"{source.shift:.6f}"]
        inputs += ["-i", str(source.url)]
        outputs += _video_tags(source.info, kind)
        # Each track is muxed whole; no -shortest, which would cut the audio.
        for position, track in enumerate(source.tracks, start=1):
            outputs += ["-map", f"1:{track.source_index}", f"-c:{position}", track.codec]
            if track.bitrate:
                outputs += [f"-b:{position}", str(track.bitrate)]
            if track.cover_art:
                outputs += [f"-disposition:{position}", "attached_pic"]
            if kind is Container.MP4 and track.title:
                outputs += [f"-metadata:s:{position}", f"handler_name={track.title}"]
        outputs += ["-map_metadata", "1", "-map_chapters", "1"]
    if kind is Container.MP4:
        # "unofficial": the stereo and spherical boxes of the joined video are written too.
        outputs += ["-movflags", "+faststart", "-strict", "unofficial"]
    return [*inputs, *outputs, "-f", _MUXERS[kind], str(target)]


def _video_tags(info: MediaInfo, kind: Container) -> list[str]:
    """The source video's language and title; its other tags describe the old encode."""
    video = next(s for s in info.streams if s.index == info.video.index)
    pairs = [("language", video.language), ("title", video.title)]
    if kind is Container.MP4:
        # mp4 players show a track's handler name as its title.
        pairs.append(("handler_name", video.title))
    return [arg for key, value in pairs if value for arg in ("-metadata:s:0", f"{key}={value}")]


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
