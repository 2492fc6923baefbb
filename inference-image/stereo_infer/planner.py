"""Planning a VideoJob: which frames of the source each segment owns, and where it decodes from.

The planner probes the source and scans its packet index (timestamps, keyframe flags, sizes),
without decoding a picture; it writes nothing but the plan. Each segment's inference Job then
reads its own part of the source (``stereo_infer.window``). So the serial part of a VideoJob
costs one read of the file, and no copy of the film exists anywhere.

Segments own whole frames of a constant-rate grid: the source's frames themselves, or, for a
variable-rate source, the slots a rate filter fills at the source's average rate (each slot
shows the last frame whose rounded time is at or before it, as ffmpeg's ``fps`` filter does).
"""

from __future__ import annotations

import bisect
import itertools
import json
import math
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from tempfile import TemporaryDirectory

from pydantic import ValidationError

from stereo_infer.errors import BadInputError
from stereo_infer.framerate import FrameRate
from stereo_infer.io import publish_output
from stereo_infer.packets import Packet, PacketIndex, scan_packets
from stereo_infer.probe import MediaInfo, first_frame_pts, probe
from stereo_infer.settings import checked
from stereo_infer.source import open_source
from stereo_infer.targets import PlanTargets
from stereo_infer.tracks import Container, output_tracks
from stereo_types.formats import PreRollFrames
from stereo_types.plan import (
    PLAN_FILE,
    GridTiming,
    PlannedAudio,
    PlannedSegment,
    SourceWindow,
    SplitPlan,
)

# ffmpeg's specifier of a file's first video stream.
FIRST_VIDEO = "v:0"


@dataclass(frozen=True)
class Grid:
    """How many output frames the source makes, and which source frame fills each."""

    slots: int
    # slot_of[i]: the grid slot source frame i (presentation order) rounds to; None when the
    # frames are the grid (constant rate): frame i is slot i.
    slot_of: tuple[int, ...] | None = None
    # Variable rate only: the pts that is time zero (where one ffmpeg pass over the source
    # starts its clock), and the first frame's slot counted from there.
    zero_pts: int = 0
    origin_slot: int = 0

    def frame_at(self, slot: int) -> int:
        """The source frame shown at ``slot``: the last one rounding to it or before."""
        if self.slot_of is None:
            return slot
        return bisect.bisect_right(self.slot_of, slot) - 1


def segment_frame_count(segment_seconds: float, rate: FrameRate) -> int:
    """Frames per segment: N seconds rounded to whole frames, at least one."""
    if not math.isfinite(segment_seconds) or segment_seconds <= 0:
        raise BadInputError(
            f"segment length must be a positive number of seconds: {segment_seconds}"
        )
    return max(1, rate.frames_in(segment_seconds))


def constant_grid(frames: Sequence[Packet]) -> Grid:
    return Grid(slots=len(frames))


def variable_grid(
    frames: Sequence[Packet], time_base: Fraction, rate: FrameRate, zero_pts: int, end_pts: int
) -> Grid:
    """The slots a rate filter at ``rate`` fills from frames with these timestamps.

    As one pass of ffmpeg's ``fps`` filter over the source: each frame's time from the
    file's start (``zero_pts``) is rounded to a slot, halves away from zero; output starts at
    the first frame's slot and ends at the stream's end (``end_pts``) rounded, so a last
    frame that rounds to the end is never shown.
    """
    per_tick = time_base * rate.fraction
    absolute = [_round_half_up((f.pts - zero_pts) * per_tick) for f in frames]
    origin = absolute[0]
    end = _round_half_up((end_pts - zero_pts) * per_tick)
    return Grid(
        slots=max(1, end - origin),
        slot_of=tuple(a - origin for a in absolute),
        zero_pts=zero_pts,
        origin_slot=origin,
    )


def plan_windows(
    index: PacketIndex,
    grid: Grid,
    stream_index: int,
    rate: FrameRate,
    *,
    segment_frames: int,
    pre_roll: int,
    start_time: float,
) -> list[tuple[int, SourceWindow]]:
    """(first slot, window) of every segment (pure)."""
    checked("pre-roll", PreRollFrames, pre_roll)
    frames = index.frames()
    pts = [f.pts for f in frames]
    sizes = _prefix_sums(frames)
    keys = index.keyframes()
    key_pts = [k.pts for k in keys]
    first_decoded = index.packets[0]
    windows = []
    for start in range(0, grid.slots, segment_frames):
        end = min(start + segment_frames, grid.slots)
        roll_start = max(0, start - pre_roll)
        first = grid.frame_at(roll_start)
        last = grid.frame_at(end - 1)
        if grid.slot_of is not None:
            # The rate filter decides a slot by the frame after it.
            last = min(last + 1, len(frames) - 1)
        k = bisect.bisect_right(key_pts, pts[first]) - 1
        key = keys[k] if k >= 0 else None
        # The first keyframe needs no seek (and some demuxers seek imprecisely near 0).
        seek = None if key is None or key.pts <= first_decoded.pts else key
        decode_from = 0 if key is None else bisect.bisect_left(pts, key.pts)
        window = SourceWindow(
            stream_index=stream_index,
            time_base_num=index.time_base.numerator,
            time_base_den=index.time_base.denominator,
            seek_seconds=None if seek is None else _seek_seconds(seek, index, start_time),
            first_pts=pts[first],
            last_pts=pts[last],
            pre_roll_frames=start - roll_start,
            frame_count=end - start,
            grid=None
            if grid.slot_of is None
            else GridTiming(
                rate_num=rate.num,
                rate_den=rate.den,
                zero_pts=grid.zero_pts,
                start_slot=grid.origin_slot + roll_start,
            ),
            lead_frames=first - decode_from,
            bytes=sizes[last + 1] - sizes[decode_from],
        )
        windows.append((start, window))
    return windows


def plan_source(
    uri: str,
    targets: PlanTargets,
    segment_seconds: float,
    *,
    pre_roll: int = 0,
    container: Container | None = None,
    work_dir: Path | None = None,
) -> SplitPlan:
    """Plan the segments of the source at ``uri`` and publish the plan at ``targets.plan``.

    With ``container``, a source track that the output cannot hold fails the plan, before
    any segment is converted.
    """
    checked("pre-roll", PreRollFrames, pre_roll)
    with open_source(uri) as source, ThreadPoolExecutor(max_workers=2) as pool:
        # The packet scan and a one-frame decode (it proves the stream decodes, and tells
        # where a single ffmpeg pass puts time zero, which a variable-rate grid counts
        # from) run beside the probe, on the first video stream.
        scan = pool.submit(scan_packets, source.url, FIRST_VIDEO)
        first = pool.submit(first_frame_pts, source.url, FIRST_VIDEO)
        info = probe(source.url, count=False)
        if container is not None:
            output_tracks(info, container)
        video = info.video
        if video.index != _first_video_stream(info):
            # The first video stream is cover art: the probe chose another one.
            scan = pool.submit(scan_packets, source.url, video.index)
            first = pool.submit(first_frame_pts, source.url, video.index)
        index = PacketIndex(time_base=video.time_base, packets=scan.result())
        shown = first.result()
        # Segments name the source as a URI (a plain path becomes file://, an http(s) URL
        # is pinned to the version read here, so a later change fails the Jobs clearly).
        plan = make_plan(
            source.uri, source.size, info, index, targets, segment_seconds, pre_roll, shown
        )
    with TemporaryDirectory(prefix="stereo-plan-", dir=work_dir) as tmp:
        plan_file = Path(tmp) / PLAN_FILE
        plan_file.write_text(json.dumps(plan.to_wire(), indent=1) + "\n", encoding="utf-8")
        publish_output(plan_file, targets.plan)
    return plan


def _first_video_stream(info: MediaInfo) -> int:
    return next(s.index for s in info.streams if s.type == "video")


def make_plan(
    uri: str,
    size: int,
    info: MediaInfo,
    index: PacketIndex,
    targets: PlanTargets,
    segment_seconds: float,
    pre_roll: int,
    first_shown_pts: int = 0,
) -> SplitPlan:
    """The plan (pure). ``first_shown_pts``: the timestamp one ffmpeg pass gives the first
    frame; a variable-rate grid counts time from that pass's zero."""
    video = info.video
    frames = index.frames()
    tb = index.time_base
    end_pts = _end_pts(frames, tb, video.start_time + video.duration_seconds)
    variable = video.variable_frame_rate or not evenly_spaced(frames)
    rate = video.frame_rate
    if variable and not video.variable_frame_rate:
        # The container claims a constant rate (MPEG-TS does) that the timestamps deny.
        rate = FrameRate.from_fraction(len(frames) / ((end_pts - frames[0].pts) * tb)).snapped()
    if variable:
        grid = variable_grid(frames, tb, rate, frames[0].pts - first_shown_pts, end_pts)
    else:
        grid = constant_grid(frames)
    s = segment_frame_count(segment_seconds, rate)
    windows = plan_windows(
        index,
        grid,
        video.index,
        rate,
        segment_frames=s,
        pre_roll=pre_roll,
        start_time=info.start_time,
    )
    segments = [
        PlannedSegment(
            index=j,
            input_uri=uri,
            window=window,
            output_uri=targets.segment_output(j),
            start_frame=start,
            frame_count=window.frame_count,
            pre_roll_frames=window.pre_roll_frames,
            start_seconds=rate.seconds(start),
            duration_seconds=rate.seconds(window.frame_count),
        )
        for j, (start, window) in enumerate(windows)
    ]
    width, height = video.display_size
    return SplitPlan(
        source=uri,
        source_bytes=size,
        fps_num=rate.num,
        fps_den=rate.den,
        frame_count=grid.slots,
        width=width,
        height=height,
        duration_seconds=rate.seconds(grid.slots),
        segment_seconds=segment_seconds,
        segment_frames=s,
        pre_roll_frames=pre_roll,
        normalised_variable_rate=variable,
        hdr=video.hdr,
        keyframes=len(index.keyframes()),
        lead_frames=sum(w.lead_frames for _, w in windows),
        audio=_planned_audio(uri, info),
        segments=segments,
    )


def read_plan(path: Path) -> SplitPlan:
    """A plan file as ``plan_source`` wrote it; a malformed one is bad input."""
    try:
        return SplitPlan.model_validate_json(path.read_bytes())
    except ValidationError as exc:
        raise BadInputError(f"not a valid split plan: {path}: {exc}") from None


def _planned_audio(uri: str, info: MediaInfo) -> PlannedAudio | None:
    audio = info.audio
    if audio is None:
        return None
    return PlannedAudio(
        uri=uri,
        stream_index=audio.index,
        codec=audio.codec,
        offset_seconds=audio.start_time - info.video.start_time,
        duration_seconds=audio.duration_seconds,
    )


def _seek_seconds(key: Packet, index: PacketIndex, start_time: float) -> float:
    """Where ffmpeg's -ss lands on or before ``key``: its decode time, from the file's start.

    The demuxer seeks to the last keyframe at or before the target; the decode time is never
    after the presentation time, so the target cannot overshoot the keyframe.
    """
    moment = (key.dts if key.dts is not None else key.pts) * index.time_base
    # Rounded down to the microsecond ffmpeg parses, so rounding cannot pass the keyframe.
    return max(0.0, math.floor((float(moment) - start_time) * 1e6) / 1e6)


def evenly_spaced(frames: Sequence[Packet]) -> bool:
    """Whether the frames' timestamps step evenly (one tick of jitter allowed: millisecond
    time bases round 1/30 s to 33 and 34)."""
    steps = {b.pts - a.pts for a, b in itertools.pairwise(frames)}
    return not steps or max(steps) - min(steps) <= 1


def _end_pts(frames: Sequence[Packet], time_base: Fraction, probed_end: float) -> int:
    """Where the stream ends: its last frame's end, from the packet's duration, else from
    the probed duration, else one typical step after the last frame."""
    last = frames[-1]
    if last.duration:
        return last.pts + last.duration
    probed = _round_half_up(Fraction(probed_end).limit_denominator(10**6) / time_base)
    if probed > last.pts:
        return probed
    step = frames[-1].pts - frames[-2].pts if len(frames) > 1 else 1
    return last.pts + max(1, step)


def _prefix_sums(frames: Sequence[Packet]) -> list[int]:
    sums = [0]
    for frame in frames:
        sums.append(sums[-1] + frame.size)
    return sums


def _round_half_up(value: Fraction) -> int:
    """Round half away from zero, as ffmpeg's AV_ROUND_NEAR_INF (exact, no float error)."""
    magnitude = (2 * abs(value.numerator) + value.denominator) // (2 * value.denominator)
    return -magnitude if value < 0 else magnitude
