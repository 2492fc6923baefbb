"""Splitting a source into frame-exact segments, each starting with a keyframe.

Boundaries are planned in frame numbers. One ffmpeg pass decodes the source
once, renumbers frame timestamps onto an exact constant-rate grid, forces a
keyframe at every segment start and lets the segment muxer cut there; so the
segments, concatenated, hold exactly the source's frames.

Pre-roll makes neighbouring segments overlap, which one segment muxer cannot
write. Segments are therefore dealt round-robin to ``branches`` outputs of the
same pass (segment j goes to branch j mod branches), with just enough branches
that the segments of one branch never overlap.
"""

import json
import math
import sys
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from tempfile import TemporaryDirectory

from pydantic import ValidationError

from stereo_infer.audio import extract_audio
from stereo_infer.encoding import VideoEncoding
from stereo_infer.errors import BadInputError, MediaError
from stereo_infer.ffmpeg import run_ffmpeg
from stereo_infer.framerate import FrameRate
from stereo_infer.io import publish_output
from stereo_infer.probe import MediaInfo, count_frames, probe
from stereo_infer.progress import ProgressReporter
from stereo_infer.targets import SplitTargets
from stereo_types.plan import (
    PLAN_FILE,
    SEGMENT_EXTENSION,
    PlannedAudio,
    PlannedSegment,
    SplitPlan,
)

SEGMENT_SUFFIX = f".{SEGMENT_EXTENSION}"


@dataclass(frozen=True)
class SegmentSpan:
    index: int
    start_frame: int
    frame_count: int
    pre_roll_frames: int


def segment_frame_count(segment_seconds: float, rate: FrameRate) -> int:
    """Frames per segment: N seconds rounded to whole frames, at least one."""
    if not math.isfinite(segment_seconds) or segment_seconds <= 0:
        raise BadInputError(
            f"segment length must be a positive number of seconds: {segment_seconds}"
        )
    return max(1, rate.frames_in(segment_seconds))


def plan_spans(total_frames: int, segment_frames: int, pre_roll: int) -> list[SegmentSpan]:
    """Frame ranges of all segments (pure). Pre-roll never reaches before frame 0."""
    return [
        SegmentSpan(
            index=j,
            start_frame=start,
            frame_count=min(segment_frames, total_frames - start),
            pre_roll_frames=min(pre_roll, start),
        )
        for j, start in enumerate(range(0, total_frames, segment_frames))
    ]


def branch_count(segment_frames: int, pre_roll: int) -> int:
    """Outputs needed so that segments in the same output do not overlap.

    Segment j spans [j*S - K, (j+1)*S); segments j and j+B are disjoint when
    K <= (B-1)*S.
    """
    return 1 + math.ceil(pre_roll / segment_frames)


def branch_select_expr(branch: int, branches: int, segment_frames: int, pre_roll: int) -> str:
    """ffmpeg ``select`` expression: is frame n part of a segment dealt to ``branch``?"""
    s, k = segment_frames, pre_roll
    # n lies in segment j = branch + q*branches (q >= 0) iff
    # 0 <= n + K - branch*S - q*branches*S < S + K.
    shift = k - branch * s
    return f"gte(n,{-shift})*lt(mod(n+{shift},{branches * s}),{s + k})"


def branch_keyframe_expr(first_length: int, segment_frames: int, pre_roll: int) -> str:
    """``-force_key_frames expr:`` for a branch output, in its own frame numbers.

    Its first segment is ``first_length`` frames long; every later one has the
    full pre-roll, so they all are S + K long.
    """
    step = segment_frames + pre_roll
    return f"eq(n,0)+gte(n,{first_length})*eq(mod(n-{first_length},{step}),0)"


def branch_cut_frames(
    first_length: int, segment_frames: int, pre_roll: int, upto: int
) -> list[int]:
    """Frame numbers where the branch's segment muxer starts a new file, up to ``upto``."""
    step = segment_frames + pre_roll
    return list(range(first_length, max(upto, first_length) + 1, step))


def split_video(
    source: Path,
    targets: SplitTargets,
    segment_seconds: float,
    *,
    source_uri: str | None = None,
    pre_roll: int = 0,
    encoding: VideoEncoding | None = None,
    info: MediaInfo | None = None,
    work_dir: Path | None = None,
    show_progress: bool = True,
) -> SplitPlan:
    """Split ``source`` into segments; publish them and its audio at ``targets``.

    The plan goes to ``targets.plan`` last, so that its presence means every file
    it names exists. ``source_uri`` is what the plan records as the source
    (default: the local path). Intermediate files live in ``work_dir`` (default:
    a temporary folder).
    """
    if pre_roll < 0:
        raise BadInputError(f"pre-roll must be zero or more frames: {pre_roll}")
    info = info or probe(source)
    encoding = encoding or VideoEncoding()
    with ExitStack() as stack:
        if work_dir is None:
            work_dir = Path(stack.enter_context(TemporaryDirectory(prefix="stereo-split-")))
        work_dir.mkdir(parents=True, exist_ok=True)
        segments = _encode_segments(
            source, info, work_dir, segment_seconds, pre_roll, encoding, show_progress
        )
        audio = _keep_audio(info, work_dir, targets)
        rate = info.video.frame_rate
        planned = []
        for span, path in segments:
            publish_output(path, targets.segment_input(span.index))
            planned.append(
                PlannedSegment(
                    index=span.index,
                    input_uri=targets.segment_input(span.index),
                    output_uri=targets.segment_output(span.index),
                    start_frame=span.start_frame,
                    frame_count=span.frame_count,
                    pre_roll_frames=span.pre_roll_frames,
                    start_seconds=rate.seconds(span.start_frame),
                    duration_seconds=rate.seconds(span.frame_count),
                )
            )
        total = sum(span.frame_count for span, _ in segments)
        width, height = info.video.display_size
        plan = SplitPlan(
            source=source_uri or str(source),
            fps_num=rate.num,
            fps_den=rate.den,
            frame_count=total,
            width=width,
            height=height,
            duration_seconds=rate.seconds(total),
            segment_seconds=segment_seconds,
            segment_frames=segment_frame_count(segment_seconds, rate),
            pre_roll_frames=pre_roll,
            normalised_variable_rate=info.video.variable_frame_rate,
            hdr=info.video.hdr,
            segment_codec=encoding.codec,
            audio=audio,
            segments=planned,
        )
        plan_file = work_dir / PLAN_FILE
        plan_file.write_text(json.dumps(plan.to_wire(), indent=2) + "\n", encoding="utf-8")
        publish_output(plan_file, targets.plan)
    return plan


def read_plan(path: Path) -> SplitPlan:
    """A plan file as ``split_video`` wrote it; a malformed one is bad input."""
    try:
        return SplitPlan.model_validate_json(path.read_bytes())
    except ValidationError as exc:
        raise BadInputError(f"not a valid split plan: {path}: {exc}") from None


def _encode_segments(
    source: Path,
    info: MediaInfo,
    work_dir: Path,
    segment_seconds: float,
    pre_roll: int,
    encoding: VideoEncoding,
    show_progress: bool,
) -> list[tuple[SegmentSpan, Path]]:
    """One ffmpeg pass writing every segment file into ``work_dir``."""
    video = info.video
    rate = video.frame_rate
    s = segment_frame_count(segment_seconds, rate)
    expected = _expected_frames(info)
    # Plan cuts beyond the expected end: a normalised variable-rate count is an
    # estimate, and a container's count may be short of what decodes.
    upto = expected + 2 * s
    branches = branch_count(s, pre_roll)
    # Branches whose first segment starts past the end would get no frames.
    used = min(branches, math.ceil(upto / s))

    graph = _filter_graph(info, s, pre_roll, branches, used)
    args = ["-i", str(source), "-filter_complex", graph]
    for b in range(used):
        first_length = s + min(pre_roll, b * s)
        cuts = [c for c in branch_cut_frames(first_length, s, pre_roll, upto + pre_roll) if c > 0]
        args += ["-map", f"[v{b}]", *encoding.args(rate, video)]
        args += ["-force_key_frames", "expr:" + branch_keyframe_expr(first_length, s, pre_roll)]
        args += ["-f", "segment", "-segment_format", "mp4", "-reset_timestamps", "1"]
        if cuts:
            args += ["-segment_frames", ",".join(map(str, cuts))]
        args.append(str(work_dir / f"branch{b}_%05d{SEGMENT_SUFFIX}"))
    progress = ProgressReporter("split", expected) if show_progress else None
    run_ffmpeg(args, progress=progress)

    segments = _collect_segments(work_dir, branches, used, s, pre_roll)
    total = sum(span.frame_count for span, _ in segments)
    if progress is not None:
        progress.finish(total)
    if not video.variable_frame_rate and total != video.frame_count:
        # The decoder is the truth (e.g. an edit list hid frames the container
        # counts); the plan records what was actually produced.
        print(
            f"warning: probed {video.frame_count} frames but decoded {total}",
            file=sys.stderr,
        )
    return segments


def _keep_audio(info: MediaInfo, work_dir: Path, targets: SplitTargets) -> PlannedAudio | None:
    path = extract_audio(info, work_dir)
    if path is None or info.audio is None:
        return None
    uri = targets.audio(path.suffix.removeprefix("."))
    publish_output(path, uri)
    return PlannedAudio(
        uri=uri,
        codec=info.audio.codec,
        offset_seconds=info.audio.start_time - info.video.start_time,
        duration_seconds=info.audio.duration_seconds,
    )


def _expected_frames(info: MediaInfo) -> int:
    video = info.video
    if video.variable_frame_rate:
        return max(1, video.frame_rate.frames_in(video.duration_seconds))
    return video.frame_count


def _filter_graph(info: MediaInfo, s: int, pre_roll: int, branches: int, used: int) -> str:
    video = info.video
    rate = video.frame_rate
    chain = f"[0:{video.index}]"
    if video.variable_frame_rate:
        # Put frames on a constant grid at the average rate: duplicates fill
        # gaps, near-coincident frames are dropped.
        chain += f"fps={rate},"
    # Timestamps from frame numbers: exact even where the source's drift.
    retime = f"setpts=N/({rate}*TB)"
    if used == 1:
        # A single segment (or no pre-roll): branch 0 takes every frame.
        return f"{chain}{retime}[v0]"
    graph = [f"{chain}split={used}" + "".join(f"[s{b}]" for b in range(used))]
    for b in range(used):
        select = branch_select_expr(b, branches, s, pre_roll)
        graph.append(f"[s{b}]select='{select}',{retime}[v{b}]")
    return ";".join(graph)


def _collect_segments(
    work_dir: Path, branches: int, used: int, s: int, pre_roll: int
) -> list[tuple[SegmentSpan, Path]]:
    files: dict[int, Path] = {}
    for b in range(used):
        for k, path in enumerate(sorted(work_dir.glob(f"branch{b}_*{SEGMENT_SUFFIX}"))):
            files[b + k * branches] = path
    segments: list[tuple[SegmentSpan, Path]] = []
    for j in sorted(files):
        path = files[j]
        lead = min(pre_roll, j * s)
        kept = count_frames(path) - lead
        if kept <= 0:
            # Only pre-roll of a segment past the end: nothing to convert.
            path.unlink()
            continue
        segments.append((SegmentSpan(j, j * s, kept, lead), path))
    _check_contiguous([span for span, _ in segments], s)
    return segments


def _check_contiguous(segments: list[SegmentSpan], s: int) -> None:
    if not segments:
        raise MediaError("splitting produced no segments")
    for position, seg in enumerate(segments):
        last = position == len(segments) - 1
        if seg.index != position or (not last and seg.frame_count != s):
            raise MediaError(
                f"segment {seg.index} has {seg.frame_count} frames at position {position};"
                f" expected {s} per segment with no gaps"
            )
