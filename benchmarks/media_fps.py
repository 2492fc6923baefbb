"""Frames per second of the media pipeline on a generated 1080p clip (not a test).

    .venv/bin/python benchmarks/media_fps.py [--seconds 4] [--format half-sbs] [--device cpu]

Generates a testsrc2 + sine clip, then times, in one run on one machine:

* plan: ``plan_source`` into segments (with pre-roll): probe and packet index, no decode,
  nothing written but the plan (it replaced the serial split);
* convert: every segment's window, decoded straight from the clip, through the builtin
  engine (weight-free ``Prior`` depth model unless ``--depth-model`` says otherwise), and
  the same windows through the copy engine as the baseline. The copy engine decodes,
  trims and re-encodes every window, so it measures what decode + encode alone cost; the
  report also gives both engines' fps over the segments with a pre-roll only (all but the
  first). Both encode with the same settings (lossless x264 ``veryfast``, the copy
  engine's own), so the ratio is the cost of depth + rendering + packing;
* assemble: joining the builtin outputs with the audio, taken from the clip.

Prints one JSON document on stdout. Engine set-up (torch import, model
loading) is excluded from the convert timings.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from stereo_infer.assemble import assemble
from stereo_infer.encoding import VideoEncoding
from stereo_infer.engines import EngineJob, EngineOptions, get_engine
from stereo_infer.engines.formats import parse_format
from stereo_infer.io import local_path
from stereo_infer.planner import plan_source
from stereo_infer.probe import probe
from stereo_infer.targets import LocalTargets
from stereo_infer.window import SegmentInput


def make_clip(path: Path, seconds: float, size: str, rate: int) -> None:
    subprocess.run(
        [
            "ffmpeg",
            "-nostdin",
            "-hide_banner",
            "-loglevel",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            f"testsrc2=size={size}:rate={rate}:duration={seconds}",
            "-f",
            "lavfi",
            "-i",
            f"sine=frequency=440:sample_rate=48000:duration={seconds}",
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-bf",
            "2",
            "-pix_fmt",
            "yuv420p",
            "-c:a",
            "aac",
            str(path),
        ],
        check=True,
    )


def timed(fn: Any) -> tuple[Any, float]:
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--size", default="1920x1080")
    parser.add_argument("--rate", type=int, default=30)
    parser.add_argument("--segment-seconds", type=float, default=2.0)
    parser.add_argument("--pre-roll", type=int, default=4)
    parser.add_argument("--format", default="half-sbs")
    parser.add_argument("--depth-model", default="Prior")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--workdir", type=Path, help="keep files here (default: a temp dir)")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="media-fps-") as tmp:
        work = args.workdir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        clip = work / "clip.mp4"
        _, generate_s = timed(lambda: make_clip(clip, args.seconds, args.size, args.rate))
        info = probe(clip)
        frames = info.video.frame_count

        targets = LocalTargets.under(str(work / "segments"))
        plan, plan_s = timed(
            lambda: plan_source(
                str(clip),
                targets,
                args.segment_seconds,
                pre_roll=args.pre_roll,
            )
        )

        fmt = parse_format(args.format)
        options = EngineOptions(device=args.device, batch_size=args.batch_size)
        engines = {
            "copy": get_engine("copy"),
            "builtin": get_engine("builtin", options),
        }
        for engine in engines.values():
            engine.prepare(fmt, args.depth_model)

        convert: dict[str, dict[str, float]] = {}
        outputs: dict[str, list[Path]] = {}
        # Frames of the segments with a pre-roll: those the copy engine re-encodes.
        reencoded = sum(seg.frame_count for seg in plan.segments if seg.pre_roll_frames)
        for name, engine in engines.items():
            paths = []
            total_s = 0.0
            reencode_s = 0.0
            for seg in plan.segments:
                src = str(local_path(seg.input_uri))
                out = work / name / f"{seg.index:05d}.mp4"
                out.parent.mkdir(parents=True, exist_ok=True)
                job = EngineJob(
                    input=SegmentInput(url=src, video=info.video, window=seg.window),
                    output_path=out,
                    stereo_format=fmt,
                    divergence=2.0,
                    convergence=0.5,
                    encoding=VideoEncoding(),
                    depth_model=args.depth_model,
                )
                _, seconds = timed(lambda engine=engine, job=job: engine.convert(job))
                total_s += seconds
                if seg.pre_roll_frames:
                    reencode_s += seconds
                paths.append(out)
            outputs[name] = paths
            convert[name] = {"seconds": round(total_s, 3), "fps": round(frames / total_s, 3)}
            if reencode_s:
                convert[name]["pre_roll_segments_fps"] = round(reencoded / reencode_s, 3)

        audio = local_path(plan.audio.uri) if plan.audio else None
        result, assemble_s = timed(
            lambda: assemble(
                plan, outputs["builtin"], work / "final.mp4", audio=audio, show_progress=False
            )
        )
        import torch

        report = {
            "clip": {
                "size": args.size,
                "rate": args.rate,
                "seconds": args.seconds,
                "frames": frames,
                "segments": len(plan.segments),
                "pre_roll": args.pre_roll,
                "generate_seconds": round(generate_s, 3),
            },
            "plan": {
                "seconds": round(plan_s, 3),
                "fps": round(frames / plan_s, 3),
                "plan_bytes": local_path(targets.plan).stat().st_size,
                "source_bytes": clip.stat().st_size,
            },
            "convert": {
                "format": fmt.value,
                "depth_model": args.depth_model,
                "device": str(getattr(engines["builtin"], "device", args.device)),
                "batch_size": getattr(engines["builtin"], "batch_size", None),
                "builtin": convert["builtin"],
                "copy": convert["copy"],
                "builtin_to_copy_fps_ratio": round(
                    convert["builtin"]["fps"] / convert["copy"]["fps"], 4
                ),
                # The first segment has no pre-roll; the others decode their pre-roll too.
                "builtin_to_copy_fps_ratio_pre_roll_segments": round(
                    convert["builtin"].get("pre_roll_segments_fps", 0.0)
                    / convert["copy"].get("pre_roll_segments_fps", float("inf")),
                    4,
                ),
            },
            "assemble": {
                "seconds": round(assemble_s, 3),
                "fps": round(result.frame_count / assemble_s, 3),
                "frames": result.frame_count,
            },
            "machine": {
                "cpus": len(os.sched_getaffinity(0)),
                "load_average_1m": round(os.getloadavg()[0], 2),
                "python": platform.python_version(),
                "torch": torch.__version__,
                "torch_threads": torch.get_num_threads(),
                "cuda": torch.cuda.is_available(),
            },
        }
    json.dump(report, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
