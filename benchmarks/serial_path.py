"""The serial step before any inference Job: ``plan_source`` against a stream copy (not a test).

    .venv/bin/python benchmarks/serial_path.py [--sizes 1080p 2160p] [--minutes 1 10 60]
        [--quick] [--convert] [--json OUT]

Generates H.264 clips (testsrc2 + a sine tone in AAC, 30 fps, a keyframe every 2 s, two
B-frames, x264 ``ultrafast`` at a modest constant bitrate) of 1, 10 and 60 minutes at 1080p
and 2 minutes at 4K, cached under ``~/.cache/stereo-operator/bench-media`` so a second run
reuses them. A clip longer than its chunk (60 s at 1080p, 10 s at 4K) is that chunk joined
to itself by stream copy, which takes seconds instead of a full encode; the planner and the
copy passes do not decode, so repeated pictures change nothing they measure.

For each clip, in the same run (interleaved, median of 3 for clips up to 10 minutes, one
run otherwise):

* baseline: ``ffmpeg -i SRC -map 0 -c copy -f segment -segment_time 10 OUT_%05d.mp4`` (what
  a serial split costs at best: it writes the whole source once more), and one plain
  ``ffmpeg -i SRC -map 0 -c copy OUT.mp4``;
* plan: ``plan_source`` with 10-s segments (probe + packet index, no decode), its wall time
  as a ratio to both passes, and the bytes it writes (the plan file) as a share of the
  source's bytes;
* growth: each figure per minute of video, and that per-minute figure as a ratio to the
  shortest 1080p clip's;
* shared keyframes: ``plan.lead_frames / plan.frame_count`` (frames decoded only to reach a
  segment's first frame, per output frame) for 10-s segments, and for 2-s segments with a
  variant of the shortest 1080p clip that has a keyframe every 20 s.

``--convert`` adds the whole path for the shortest 1080p clip with the ``copy`` engine: plan,
every segment's ``convert`` one after the other, ``assemble`` with the source's audio; and,
as the baseline of the per-segment overhead, one ``convert`` of the whole clip with no
window, and a decode-only pass (``-f null``) of every window against one of the whole clip.

Every step is timed in wall seconds and in CPU seconds (this process and its ffmpeg and
ffprobe children), which other load on a shared machine moves much less. Prints Markdown
tables and writes one JSON document (``--json``).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from stereo_infer.assemble import assemble
from stereo_infer.conversion import ConversionRequest, convert
from stereo_infer.encoding import VideoEncoding
from stereo_infer.engines import EngineOptions, get_engine
from stereo_infer.engines.formats import parse_format
from stereo_infer.io import local_path
from stereo_infer.planner import plan_source
from stereo_infer.probe import probe
from stereo_infer.targets import LocalTargets
from stereo_infer.window import SegmentInput
from stereo_types.plan import SplitPlan

T = TypeVar("T")

# Bump when the generated clips change, so stale cached files are not reused.
MEDIA_VERSION = 1
RATE = 30
BITRATES = {1080: "2M", 2160: "8M"}
CHUNK_SECONDS = {1080: 60, 2160: 10}
SIZES = {"1080p": (1920, 1080), "2160p": (3840, 2160)}
DEFAULT_CACHE = Path.home() / ".cache" / "stereo-operator" / "bench-media"
BASELINE_SEGMENT_SECONDS = 10
SHORT_SEGMENT_SECONDS = 2.0
SPARSE_GOP_SECONDS = 20


@dataclass(frozen=True)
class ClipSpec:
    width: int
    height: int
    seconds: int
    gop_seconds: int = 2

    @property
    def label(self) -> str:
        minutes = self.seconds / 60
        length = f"{minutes:g} min" if self.seconds % 60 == 0 else f"{self.seconds} s"
        gop = "" if self.gop_seconds == 2 else f", keyframe every {self.gop_seconds} s"
        return f"{self.height}p {length}{gop}"

    @property
    def bitrate(self) -> str:
        return BITRATES.get(self.height, "8M")

    @property
    def file_name(self) -> str:
        return (
            f"testsrc2-{self.width}x{self.height}-{RATE}fps-{self.seconds}s"
            f"-gop{self.gop_seconds}-{self.bitrate}-v{MEDIA_VERSION}.mp4"
        )

    def chunk(self) -> ClipSpec | None:
        """The shorter clip this one is joined from; None: encode it directly."""
        chunk = CHUNK_SECONDS.get(self.height, 10)
        if self.seconds <= chunk or self.seconds % chunk:
            return None
        return ClipSpec(self.width, self.height, chunk, self.gop_seconds)


def ffmpeg(*args: str) -> None:
    cmd = ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y", *args]
    subprocess.run(cmd, check=True)


def timed(fn: Callable[[], T]) -> tuple[T, float]:
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def cpu_seconds() -> float:
    """CPU time of this process and of its finished children (ffmpeg, ffprobe) so far."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def cpu_timed(fn: Callable[[], T]) -> tuple[T, float, float]:
    """Result, wall seconds and CPU seconds: the CPU figure hardly moves with other load."""
    cpu = cpu_seconds()
    result, wall = timed(fn)
    return result, wall, cpu_seconds() - cpu


def encode_clip(spec: ClipSpec, path: Path) -> None:
    gop = str(spec.gop_seconds * RATE)
    ffmpeg(
        *("-f", "lavfi", "-i"),
        f"testsrc2=size={spec.width}x{spec.height}:rate={RATE}:duration={spec.seconds}",
        *("-f", "lavfi", "-i"),
        f"sine=frequency=440:sample_rate=48000:duration={spec.seconds}",
        *("-c:v", "libx264", "-preset", "ultrafast", "-bf", "2"),
        *("-g", gop, "-keyint_min", gop, "-sc_threshold", "0"),
        *("-b:v", spec.bitrate, "-maxrate", spec.bitrate, "-bufsize", spec.bitrate),
        *("-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "128k"),
        *("-movflags", "+faststart", "-f", "mp4", str(path)),
    )


def join_clip(chunk: Path, copies: int, path: Path) -> None:
    listing = path.with_name(f".{path.name}.concat.txt")
    escaped = str(chunk.resolve()).replace("'", "'\\''")
    listing.write_text(f"file '{escaped}'\n" * copies, encoding="utf-8")
    try:
        ffmpeg(
            *("-f", "concat", "-safe", "0", "-i", str(listing)),
            *("-map", "0", "-c", "copy", "-movflags", "+faststart", "-f", "mp4", str(path)),
        )
    finally:
        listing.unlink(missing_ok=True)


def ensure_clip(spec: ClipSpec, cache: Path, log: dict[str, float]) -> Path:
    """The cached clip for ``spec``, made (and timed into ``log``) if missing."""
    path = cache / spec.file_name
    if path.is_file():
        return path
    chunk = spec.chunk()
    chunk_path = ensure_clip(chunk, cache, log) if chunk is not None else None
    pending = path.with_name(f".{path.name}.partial")
    print(f"generating {spec.label} -> {path}", file=sys.stderr)
    if chunk is not None and chunk_path is not None:
        _, seconds = timed(lambda: join_clip(chunk_path, spec.seconds // chunk.seconds, pending))
    else:
        _, seconds = timed(lambda: encode_clip(spec, pending))
    os.replace(pending, path)
    log[spec.file_name] = round(seconds, 2)
    return path


def dir_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def segment_pass(src: Path, out: Path) -> int:
    out.mkdir(parents=True)
    ffmpeg(
        *("-i", str(src), "-map", "0", "-c", "copy"),
        *("-f", "segment", "-segment_time", str(BASELINE_SEGMENT_SECONDS)),
        str(out / "OUT_%05d.mp4"),
    )
    return dir_bytes(out)


def copy_pass(src: Path, out: Path) -> int:
    out.mkdir(parents=True)
    ffmpeg("-i", str(src), "-map", "0", "-c", "copy", str(out / "OUT.mp4"))
    return dir_bytes(out)


def plan_pass(src: Path, out: Path, segment_seconds: float, pre_roll: int) -> tuple[SplitPlan, int]:
    targets = LocalTargets.under(str(out))
    plan = plan_source(str(src), targets, segment_seconds, pre_roll=pre_roll)
    return plan, local_path(targets.plan).stat().st_size


def lead_share(plan: SplitPlan) -> float:
    return plan.lead_frames / plan.frame_count


def window_read_share(plan: SplitPlan) -> float:
    """Video bytes the segments' windows read from the source, over the source's bytes."""
    return sum(s.window.bytes for s in plan.segments) / plan.source_bytes


def measure_clip(
    spec: ClipSpec, src: Path, work: Path, repeats: int, pre_roll: int
) -> dict[str, Any]:
    seg_s: list[float] = []
    copy_s: list[float] = []
    plan_s: list[float] = []
    cpu: dict[str, list[float]] = {"segment": [], "copy": [], "plan": []}
    seg_bytes = copy_bytes = plan_bytes = 0
    plan: SplitPlan | None = None
    for i in range(repeats):
        # Interleaved, so that a change in the machine's load hits all three alike.
        out = work / f"seg-{i}"
        seg_bytes, t, c = cpu_timed(partial(segment_pass, src, out))
        seg_s.append(t)
        cpu["segment"].append(c)
        shutil.rmtree(out)
        out = work / f"copy-{i}"
        copy_bytes, t, c = cpu_timed(partial(copy_pass, src, out))
        copy_s.append(t)
        cpu["copy"].append(c)
        shutil.rmtree(out)
        out = work / f"plan-{i}"
        (plan, plan_bytes), t, c = cpu_timed(
            partial(plan_pass, src, out, BASELINE_SEGMENT_SECONDS, pre_roll)
        )
        plan_s.append(t)
        cpu["plan"].append(c)
        shutil.rmtree(out)
    assert plan is not None
    source_bytes = src.stat().st_size
    minutes = plan.duration_seconds / 60
    seg, copy, planned = (statistics.median(x) for x in (seg_s, copy_s, plan_s))
    seg_cpu, copy_cpu, plan_cpu = (statistics.median(cpu[k]) for k in ("segment", "copy", "plan"))
    return {
        "clip": spec.label,
        "file": spec.file_name,
        "width": spec.width,
        "height": spec.height,
        "minutes": round(minutes, 4),
        "frames": plan.frame_count,
        "keyframes": plan.keyframes,
        "source_bytes": source_bytes,
        "repeats": repeats,
        "segment_pass": {
            "seconds": round(seg, 3),
            "runs": [round(t, 3) for t in seg_s],
            "cpu_seconds": round(seg_cpu, 3),
            "bytes_written": seg_bytes,
            "bytes_share": round(seg_bytes / source_bytes, 4),
            "seconds_per_minute": round(seg / minutes, 4),
        },
        "copy_pass": {
            "seconds": round(copy, 3),
            "runs": [round(t, 3) for t in copy_s],
            "cpu_seconds": round(copy_cpu, 3),
            "bytes_written": copy_bytes,
            "bytes_share": round(copy_bytes / source_bytes, 4),
            "seconds_per_minute": round(copy / minutes, 4),
        },
        "plan": {
            "segment_seconds": BASELINE_SEGMENT_SECONDS,
            "pre_roll": pre_roll,
            "segments": len(plan.segments),
            "seconds": round(planned, 3),
            "runs": [round(t, 3) for t in plan_s],
            "cpu_seconds": round(plan_cpu, 3),
            "to_segment_pass": round(planned / seg, 3),
            "to_copy_pass": round(planned / copy, 3),
            "cpu_to_copy_pass": round(plan_cpu / copy_cpu, 3),
            "bytes_written": plan_bytes,
            "bytes_share": round(plan_bytes / source_bytes, 6),
            "seconds_per_minute": round(planned / minutes, 4),
            "bytes_per_minute": round(plan_bytes / minutes),
            "lead_frames": plan.lead_frames,
            "lead_share": round(lead_share(plan), 4),
            "window_read_share": round(window_read_share(plan), 4),
        },
    }


def add_growth(clips: list[dict[str, Any]]) -> None:
    """Each per-minute figure over the shortest 1080p clip's (1.0: grows linearly)."""
    base_candidates = [c for c in clips if c["height"] == 1080]
    if not base_candidates:
        return
    base = min(base_candidates, key=lambda c: c["minutes"])
    for c in clips:
        c["growth_vs"] = base["clip"]
        c["growth"] = {
            "segment_pass_seconds_per_minute": round(
                c["segment_pass"]["seconds_per_minute"]
                / base["segment_pass"]["seconds_per_minute"],
                3,
            ),
            "copy_pass_seconds_per_minute": round(
                c["copy_pass"]["seconds_per_minute"] / base["copy_pass"]["seconds_per_minute"], 3
            ),
            "plan_seconds_per_minute": round(
                c["plan"]["seconds_per_minute"] / base["plan"]["seconds_per_minute"], 3
            ),
            "plan_bytes_per_minute": round(
                c["plan"]["bytes_per_minute"] / base["plan"]["bytes_per_minute"], 3
            ),
        }


def keyframe_figures(
    dense: Path, sparse: Path, sparse_spec: ClipSpec, work: Path, pre_roll: int
) -> dict[str, Any]:
    """lead_frames / frame_count with 2-s keyframes and with 20-s keyframes."""
    rows = {}
    for name, src in (("keyframe_every_2s", dense), ("keyframe_every_20s", sparse)):
        for seconds in (float(BASELINE_SEGMENT_SECONDS), SHORT_SEGMENT_SECONDS):
            out = work / f"lead-{name}-{seconds:g}"
            (plan, _), t = timed(partial(plan_pass, src, out, seconds, pre_roll))
            shutil.rmtree(out)
            rows[f"{name}/segments_{seconds:g}s"] = {
                "segments": len(plan.segments),
                "frames": plan.frame_count,
                "keyframes": plan.keyframes,
                "lead_frames": plan.lead_frames,
                "lead_share": round(lead_share(plan), 4),
                "window_read_share": round(window_read_share(plan), 4),
                "plan_seconds": round(t, 3),
            }
    return {"sparse_clip": sparse_spec.file_name, "pre_roll": pre_roll, "plans": rows}


def decode_only(segment: SegmentInput) -> None:
    ffmpeg(
        *segment.decode_args(drop_pre_roll=True),
        *("-f", "null", "-"),
    )


def whole_path(src: Path, work: Path, segment_seconds: float, pre_roll: int) -> dict[str, Any]:
    """Plan, convert every segment (copy engine, one after the other), assemble."""
    fmt = parse_format("half-sbs")
    engine = get_engine("copy", EngineOptions())
    engine.prepare(fmt, None)

    def request(input_uri: str, output_uri: str, seg_window: Any) -> ConversionRequest:
        return ConversionRequest(
            input_uri=input_uri,
            output_uri=output_uri,
            stereo_format=fmt,
            divergence=2.0,
            convergence=0.5,
            encoding=VideoEncoding(),
            window=seg_window,
        )

    (plan, _), plan_s = timed(lambda: plan_pass(src, work / "segments", segment_seconds, pre_roll))
    per_segment: list[dict[str, Any]] = []
    convert_cpu = 0.0
    for seg in plan.segments:
        result, t, c = cpu_timed(
            partial(
                convert,
                engine,
                request(seg.input_uri, seg.output_uri, seg.window),
                device="cpu",
                show_progress=False,
            )
        )
        per_segment.append(
            {
                "index": seg.index,
                "frames": result.frames,
                "lead_frames": seg.window.lead_frames,
                "seconds": round(t, 3),
                "cpu_seconds": round(c, 3),
            }
        )
        convert_cpu += c
    files = [local_path(seg.output_uri) for seg in plan.segments]
    done, assemble_s = timed(
        lambda: assemble(plan, files, work / "final.mp4", source=src, show_progress=False)
    )
    whole_out = (work / "whole" / "output.mp4").resolve()
    whole, whole_s, whole_cpu = cpu_timed(
        lambda: convert(
            engine,
            request(src.resolve().as_uri(), whole_out.as_uri(), None),
            device="cpu",
            show_progress=False,
        )
    )

    # Decode only: each window against the whole clip, same filters, no encode.
    video = probe(src, count=False).video
    url = str(src)
    _, decode_whole_s, decode_whole_cpu = cpu_timed(
        lambda: decode_only(SegmentInput(url=url, video=video))
    )
    decode_segments_s = decode_segments_cpu = 0.0
    for seg in plan.segments:
        _, t, c = cpu_timed(partial(decode_only, SegmentInput(url, video, window=seg.window)))
        decode_segments_s += t
        decode_segments_cpu += c

    n = len(plan.segments)
    convert_s = sum(s["seconds"] for s in per_segment)
    return {
        "engine": "copy",
        "segment_seconds": segment_seconds,
        "pre_roll": pre_roll,
        "segments": n,
        "frames": plan.frame_count,
        "plan_seconds": round(plan_s, 3),
        "convert_seconds": round(convert_s, 3),
        "assemble_seconds": round(assemble_s, 3),
        "assembled_frames": done.frame_count,
        "audio_tracks": done.audio_tracks,
        "total_seconds": round(plan_s + convert_s + assemble_s, 3),
        "whole_clip_convert_seconds": round(whole_s, 3),
        "whole_clip_frames": whole.frames,
        "convert_overhead_per_segment_seconds": round((convert_s - whole_s) / n, 3),
        "convert_overhead_share": round(convert_s / whole_s - 1, 4),
        "convert_cpu_seconds": round(convert_cpu, 3),
        "whole_clip_convert_cpu_seconds": round(whole_cpu, 3),
        "convert_cpu_overhead_per_segment_seconds": round((convert_cpu - whole_cpu) / n, 3),
        "convert_cpu_overhead_share": round(convert_cpu / whole_cpu - 1, 4),
        "decode_only": {
            "whole_clip_seconds": round(decode_whole_s, 3),
            "segments_seconds": round(decode_segments_s, 3),
            "overhead_per_segment_seconds": round((decode_segments_s - decode_whole_s) / n, 3),
            "overhead_share": round(decode_segments_s / decode_whole_s - 1, 4),
            "whole_clip_cpu_seconds": round(decode_whole_cpu, 3),
            "segments_cpu_seconds": round(decode_segments_cpu, 3),
            "cpu_overhead_per_segment_seconds": round(
                (decode_segments_cpu - decode_whole_cpu) / n, 3
            ),
            "cpu_overhead_share": round(decode_segments_cpu / decode_whole_cpu - 1, 4),
        },
        "per_segment": per_segment,
    }


def machine() -> dict[str, Any]:
    version = subprocess.run(["ffmpeg", "-version"], capture_output=True, text=True, check=True)
    return {
        "cpus": len(os.sched_getaffinity(0)),
        "load_average_1m": round(os.getloadavg()[0], 2),
        "python": platform.python_version(),
        "ffmpeg": version.stdout.split("\n", 1)[0],
        "platform": platform.platform(),
    }


def mb(n: int) -> str:
    return f"{n / 1e6:,.1f}"


def table(report: dict[str, Any]) -> str:
    lines = [
        "| Clip | Source MB | Segment pass s | Copy pass s | plan_source s"
        " | Plan / segment pass | Plan / copy | Plan / copy, CPU | Plan bytes | Plan bytes / source"
        " | s per min (segment / copy / plan) | Plan s/min vs shortest | Lead (10-s segments) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for c in report["clips"]:
        seg, copy, plan = c["segment_pass"], c["copy_pass"], c["plan"]
        growth = c.get("growth", {}).get("plan_seconds_per_minute", "")
        lines.append(
            f"| {c['clip']} | {mb(c['source_bytes'])} | {seg['seconds']:.2f}"
            f" | {copy['seconds']:.2f} | {plan['seconds']:.2f}"
            f" | {plan['to_segment_pass']:.2f}x | {plan['to_copy_pass']:.2f}x"
            f" | {plan['cpu_to_copy_pass']:.2f}x"
            f" | {plan['bytes_written']:,} | {plan['bytes_share']:.2e}"
            f" | {seg['seconds_per_minute']:.3f} / {copy['seconds_per_minute']:.3f}"
            f" / {plan['seconds_per_minute']:.3f} | {growth}x | {plan['lead_share']:.3f} |"
        )
    keys = report.get("keyframes")
    if keys:
        lines += [
            "",
            "| Keyframes | Segments | lead_frames / frame_count | Window bytes / source |",
            "|---|---|---|---|",
        ]
        for name, row in keys["plans"].items():
            gop, segs = name.split("/")
            lines.append(
                f"| {gop} | {segs} ({row['segments']}) | {row['lead_share']:.3f}"
                f" | {row['window_read_share']:.3f} |"
            )
    path = report.get("convert")
    if path:
        d = path["decode_only"]
        n = path["segments"]
        lines += [
            "",
            f"Whole path, {path['clip']}, copy engine, {n} segments of"
            f" {path['segment_seconds']:g} s (sequential):",
            "",
            "| Step | Wall s | CPU s |",
            "|---|---|---|",
            f"| plan_source | {path['plan_seconds']:.2f} | |",
            f"| convert, {n} segments | {path['convert_seconds']:.2f}"
            f" | {path['convert_cpu_seconds']:.2f} |",
            f"| assemble (with audio) | {path['assemble_seconds']:.2f} | |",
            f"| total | {path['total_seconds']:.2f} | |",
            f"| one convert of the whole clip | {path['whole_clip_convert_seconds']:.2f}"
            f" | {path['whole_clip_convert_cpu_seconds']:.2f} |",
            f"| convert overhead per segment | {path['convert_overhead_per_segment_seconds']:+.3f}"
            f" ({path['convert_overhead_share']:+.1%})"
            f" | {path['convert_cpu_overhead_per_segment_seconds']:+.3f}"
            f" ({path['convert_cpu_overhead_share']:+.1%}) |",
            f"| decode only, {n} windows | {d['segments_seconds']:.2f}"
            f" | {d['segments_cpu_seconds']:.2f} |",
            f"| decode only, whole clip | {d['whole_clip_seconds']:.2f}"
            f" | {d['whole_clip_cpu_seconds']:.2f} |",
            f"| decode overhead per segment | {d['overhead_per_segment_seconds']:+.3f}"
            f" ({d['overhead_share']:+.1%}) | {d['cpu_overhead_per_segment_seconds']:+.3f}"
            f" ({d['cpu_overhead_share']:+.1%}) |",
        ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--sizes", nargs="+", choices=sorted(SIZES), default=sorted(SIZES), help="resolutions"
    )
    parser.add_argument(
        "--minutes", nargs="+", type=float, default=[1, 10, 60], help="1080p clip lengths"
    )
    parser.add_argument("--minutes-4k", nargs="+", type=float, default=[2], help="4K lengths")
    parser.add_argument(
        "--quick", action="store_true", help="1080p at 1 and 10 minutes only (no 60, no 4K)"
    )
    parser.add_argument(
        "--repeats", type=int, help="runs per clip (default: 3 up to 10 min, else 1)"
    )
    parser.add_argument("--pre-roll", type=int, default=0, help="pre-roll frames per segment")
    parser.add_argument("--convert", action="store_true", help="also run the whole path")
    parser.add_argument("--convert-segment-seconds", type=float, default=10.0)
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="generated clips")
    parser.add_argument("--workdir", type=Path, help="scratch space (default: a temp dir)")
    parser.add_argument("--json", type=Path, help="write the JSON report here")
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes, args.minutes = ["1080p"], [1, 10]

    specs: list[ClipSpec] = []
    for size in args.sizes:
        width, height = SIZES[size]
        lengths = args.minutes if height == 1080 else args.minutes_4k
        specs += [ClipSpec(width, height, round(m * 60)) for m in sorted(lengths)]
    shortest = min((s for s in specs if s.height == 1080), key=lambda s: s.seconds, default=None)

    started = datetime.datetime.now(datetime.UTC)
    report: dict[str, Any] = {
        "date": started.isoformat(timespec="seconds"),
        "command": " ".join([".venv/bin/python", "benchmarks/serial_path.py", *sys.argv[1:]]),
        "machine": machine(),
        "rate": RATE,
        "baseline_segment_seconds": BASELINE_SEGMENT_SECONDS,
    }
    args.cache.mkdir(parents=True, exist_ok=True)
    generated: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="serial-path-", dir=args.workdir) as tmp:
        work = Path(tmp)
        clips = []
        for spec in specs:
            src = ensure_clip(spec, args.cache, generated)
            repeats = args.repeats or (3 if spec.seconds <= 600 else 1)
            print(f"measuring {spec.label} ({repeats} runs)", file=sys.stderr)
            clips.append(measure_clip(spec, src, work / spec.file_name, repeats, args.pre_roll))
        add_growth(clips)
        report["clips"] = clips
        if shortest is not None:
            sparse_spec = ClipSpec(
                shortest.width, shortest.height, shortest.seconds, SPARSE_GOP_SECONDS
            )
            sparse = ensure_clip(sparse_spec, args.cache, generated)
            dense = args.cache / shortest.file_name
            print("measuring shared keyframes", file=sys.stderr)
            report["keyframes"] = keyframe_figures(
                dense, sparse, sparse_spec, work / "lead", args.pre_roll
            )
            if args.convert:
                print(f"whole path on {shortest.label}", file=sys.stderr)
                path = whole_path(
                    dense, work / "convert", args.convert_segment_seconds, args.pre_roll
                )
                report["convert"] = {"clip": shortest.label, **path}
    report["generated_seconds"] = generated
    report["machine"]["load_average_1m_end"] = round(os.getloadavg()[0], 2)
    report["wall_seconds"] = round(
        (datetime.datetime.now(datetime.UTC) - started).total_seconds(), 1
    )
    print(table(report))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
