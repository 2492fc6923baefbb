"""The engines on one GPU: frames per second, memory and busy time, per model, size and layout.

    benchmarks/gpu/run [--tiny] [--out report.jsonl] [--encoder software|nvenc] [--frames N]

Cases: the builtin engine with Depth Anything V2 S, B and L (the published architectures,
random weights made here and loaded through the engine's own loader), and iw3 with its
weight-free ``NULL`` depth model and ``forward_fill`` stereo method, each at 1080p and 4K, in
full-SBS and half-SBS, on a generated testsrc2 clip. ``--tiny`` runs every case on the CPU at
64x36 with tiny random models: a smoke run of the whole path, not a measurement.

Per case (one JSON line each, then a table):

* ``e2e_fps``: frames / wall time of ``engine.convert`` (decode, depth, render, pack,
  encode; model loading excluded);
* ``depth_fps``: the depth estimator alone, on batches of random frames already on the
  device (``n/a`` for iw3: its depth model runs inside iw3's own loop, and ``NULL`` is free);
* ``peak_gpu_mib``: ``torch.cuda.max_memory_allocated`` over the conversion;
* ``gpu_busy_pct``: the mean of ``nvidia-smi``'s utilization.gpu sampled during it;
* ``decode_s`` / ``encode_s``: the same frames through the engine's own decoder and encoder
  (``rawvideo.FrameDecoder`` / ``FrameEncoder``, same options) alone, and their share of the
  conversion's wall time. The engine overlaps them with the compute, so the shares may add
  up to more than 100 %: a share near 100 % means that stage sets the pace.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from stereo_infer.encoding import VideoEncoding
from stereo_infer.engines import EngineJob, EngineOptions, get_engine
from stereo_infer.engines.builtin import BuiltinEngine
from stereo_infer.engines.depth import WEIGHTS_ENV, StreamState
from stereo_infer.engines.formats import StereoFormat
from stereo_infer.engines.rawvideo import FrameDecoder, FrameEncoder
from stereo_infer.probe import VideoInfo, probe
from stereo_infer.window import SegmentInput

RATE = 24
SIZES = {"1080p": (1920, 1080), "4k": (3840, 2160)}
TINY_SIZES = {"tiny": (64, 36)}
FORMATS = (StereoFormat.FULL_SBS, StereoFormat.HALF_SBS)
IW3_METHOD = "forward_fill"
IW3_DEPTH_MODEL = "NULL"
# Timed calls of the estimator alone, after one untimed warm-up call.
DEPTH_REPEATS = 5
WARM_UP_FRAMES = 4
GPU_SAMPLE_S = 0.1


@dataclass(frozen=True)
class Architecture:
    """Depth Anything V2's sizes as its transformers checkpoints' config.json give them
    (24.8, 97.5 and 335.3 million parameters for S, B and L, as published)."""

    hidden: int
    layers: int
    heads: int
    out_indices: tuple[int, ...]
    fusion: int
    neck: tuple[int, ...]
    head: int = 32


ARCHITECTURES = {
    "Any_V2_S": Architecture(384, 12, 6, (3, 6, 9, 12), 64, (48, 96, 192, 384)),
    "Any_V2_B": Architecture(768, 12, 12, (3, 6, 9, 12), 128, (96, 192, 384, 768)),
    "Any_V2_L": Architecture(1024, 24, 16, (5, 12, 18, 24), 256, (256, 512, 1024, 1024)),
}
TINY_ARCHITECTURE = Architecture(32, 4, 2, (1, 2, 3, 4), 16, (8, 16, 32, 32), head=8)


@dataclass
class Case:
    engine: str
    depth_model: str
    size: str
    width: int
    height: int
    format: str
    frames: int
    device: str
    device_name: str
    encoder: str
    batch_size: int | None = None
    e2e_s: float | None = None
    e2e_fps: float | None = None
    depth_fps: float | None = None
    peak_gpu_mib: float | None = None
    gpu_busy_pct: float | None = None
    decode_s: float | None = None
    encode_s: float | None = None
    decode_share: float | None = None
    encode_share: float | None = None


def save_random_depth_anything(root: Path, name: str, arch: Architecture) -> None:
    """``name`` with ``arch``'s sizes and random weights, in the published layout
    (``root/name/config.json`` and ``model.safetensors``): compute equals the real model's."""
    from transformers import DepthAnythingConfig, DepthAnythingForDepthEstimation, Dinov2Config

    backbone = Dinov2Config(  # type: ignore[call-arg]  # out_features: the stubs lack it
        hidden_size=arch.hidden,
        num_hidden_layers=arch.layers,
        num_attention_heads=arch.heads,
        mlp_ratio=4,
        patch_size=14,
        image_size=518,
        out_features=[f"stage{i}" for i in arch.out_indices],
        reshape_hidden_states=False,
    )
    config = DepthAnythingConfig(
        backbone_config=backbone,
        fusion_hidden_size=arch.fusion,
        neck_hidden_sizes=list(arch.neck),
        reassemble_hidden_size=arch.hidden,
        head_hidden_size=arch.head,
        depth_estimation_type="relative",
    )
    torch.manual_seed(0)
    DepthAnythingForDepthEstimation(config).save_pretrained(root / name)


def make_clip(path: Path, width: int, height: int, frames: int) -> None:
    args = ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi"]
    args += ["-i", f"testsrc2=size={width}x{height}:rate={RATE}", "-frames:v", str(frames)]
    args += ["-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", str(path)]
    subprocess.run(args, check=True)


def timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class GpuBusy:
    """Samples the GPU's utilization in a thread while a case runs: nvidia-smi, else
    torch.cuda.utilization (pynvml), else nothing (None)."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._read = self._reader()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _reader(self) -> Callable[[], float] | None:
        if self.device.type != "cuda":
            return None
        index = str(self.device.index or 0)
        if shutil.which("nvidia-smi"):
            query = ["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits"]

            def smi() -> float:
                out = subprocess.run([*query, "-i", index], capture_output=True, text=True)
                return float(out.stdout.strip())

            return smi
        try:
            torch.cuda.utilization(self.device)
        except Exception:  # no pynvml: no figure rather than a made-up one
            return None
        return lambda: float(torch.cuda.utilization(self.device))

    def _run(self) -> None:
        assert self._read is not None
        while not self._stop.wait(GPU_SAMPLE_S):
            try:
                self.samples.append(self._read())
            except (ValueError, OSError):
                return

    def __enter__(self) -> GpuBusy:
        if self._read is not None:
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    @property
    def mean(self) -> float | None:
        return round(statistics.fmean(self.samples), 1) if self.samples else None


def device_name(device: str) -> str:
    return torch.cuda.get_device_name() if device == "cuda" else platform.processor() or "cpu"


def depth_fps(engine: BuiltinEngine, model: str, width: int, height: int) -> float:
    """The estimator alone, on a batch of random frames already on the device."""
    estimator = engine.estimator(model)
    batch = engine.batch_size
    frames = torch.rand(batch, 3, height, width, device=engine.device)
    with torch.inference_mode():
        estimator.estimate(frames, StreamState())
        synchronize(engine.device)
        start = time.perf_counter()
        for _ in range(DEPTH_REPEATS):
            estimator.estimate(frames, StreamState())
        synchronize(engine.device)
    return batch * DEPTH_REPEATS / (time.perf_counter() - start)


def read_frames(source: SegmentInput) -> list[np.ndarray]:
    decoder = FrameDecoder(source)
    frames = []
    while True:
        frame = np.empty((decoder.height, decoder.width, 3), decoder.samples.dtype)
        if not decoder.read_into(memoryview(frame.data).cast("B")):
            break
        frames.append(frame)
    decoder.finish()
    return frames


def decode_seconds(source: SegmentInput) -> float:
    """The engine's decoder alone: the clip to packed RGB frames, read and dropped."""
    decoder = FrameDecoder(source)
    buffer = memoryview(bytearray(decoder.frame_bytes))

    def drain() -> None:
        while decoder.read_into(buffer):
            pass
        decoder.finish()

    return timed(drain)


def encode_seconds(output: Path, video: VideoInfo, encoding: VideoEncoding, work: Path) -> float:
    """The engine's encoder alone, on a conversion's output frames (decoded beforehand, in
    memory, untimed); measured once per size and format."""
    packed = probe(output).video
    frames = read_frames(SegmentInput(url=str(output), video=packed))
    height, width = frames[0].shape[:2]
    encoder = FrameEncoder(
        work / "encode-only.mp4", width, height, SegmentInput("", video).rate, encoding, video
    )

    def write() -> None:
        for frame in frames:
            encoder.stdin.write(memoryview(frame.data).cast("B"))
        encoder.close_input()
        encoder.finish()

    return timed(write)


@contextmanager
def peak_memory(device: torch.device) -> Iterator[list[float | None]]:
    result: list[float | None] = [None]
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    yield result
    if device.type == "cuda":
        result[0] = round(torch.cuda.max_memory_allocated(device) / 2**20, 1)


def run_case(
    case: Case,
    engine: Any,
    source: SegmentInput,
    encoding: VideoEncoding,
    work: Path,
    encode_cache: dict[tuple[str, str], float],
    decode_s: float,
) -> Case:
    fmt = StereoFormat(case.format)
    output = work / f"{case.engine}-{case.depth_model}-{case.size}-{case.format}.mp4"
    job = EngineJob(source, output, fmt, 2.0, 0.5, encoding, case.depth_model)
    device = torch.device(case.device)
    with peak_memory(device) as peak, GpuBusy(device) as busy:
        seconds = timed(lambda: engine.convert(job))
    case.e2e_s = round(seconds, 3)
    case.e2e_fps = round(case.frames / seconds, 2)
    case.peak_gpu_mib = peak[0]
    case.gpu_busy_pct = busy.mean
    key = (case.size, case.format)
    if key not in encode_cache:
        encode_cache[key] = encode_seconds(output, source.video, encoding, work)
    case.decode_s = round(decode_s, 3)
    case.encode_s = round(encode_cache[key], 3)
    case.decode_share = round(decode_s / seconds, 3)
    case.encode_share = round(encode_cache[key] / seconds, 3)
    output.unlink()
    return case


def warm_up(engine: Any, source: SegmentInput, model: str, work: Path) -> None:
    """One untimed conversion per engine and size: lazily loaded kernels, cuDNN's algorithm
    search and iw3's first-call set-up are not counted in the first case."""
    output = work / "warm-up.mp4"
    engine.convert(EngineJob(source, output, FORMATS[0], 2.0, 0.5, VideoEncoding(), model))
    output.unlink()


def release(engine: Any) -> None:
    del engine
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def table(cases: list[Case]) -> str:
    columns = ("engine", "depth_model", "size", "format", "e2e_fps", "depth_fps",
               "peak_gpu_mib", "gpu_busy_pct", "decode_share", "encode_share")  # fmt: skip
    rows = [[str(c) for c in columns]]
    for case in cases:
        values = asdict(case)
        rows.append(["n/a" if values[c] is None else str(values[c]) for c in columns])
    widths = [max(len(row[i]) for row in rows) for i in range(len(columns))]
    return "\n".join(
        "  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in rows
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="CPU smoke run at 64x36, 4 frames")
    parser.add_argument("--out", type=Path, default=Path("gpu-report.jsonl"))
    parser.add_argument("--frames", type=int, help="frames per clip (default 48; tiny: 4)")
    parser.add_argument("--encoder", choices=("software", "nvenc"), default="software")
    parser.add_argument("--batch-size", type=int, help="the engines' (default: per device)")
    parser.add_argument("--skip-iw3", action="store_true", help="builtin engine only")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    device = "cpu" if args.tiny else "cuda"
    if device == "cuda" and not torch.cuda.is_available():
        print("gpu bench: torch sees no CUDA device; use --tiny for the CPU smoke run",
              file=sys.stderr)  # fmt: skip
        return 2
    sizes = TINY_SIZES if args.tiny else SIZES
    frames = args.frames or (4 if args.tiny else 48)
    encoding = VideoEncoding(crf=20, preset="medium", encoder=args.encoder).available()
    options = EngineOptions(device=device, batch_size=args.batch_size)
    name = device_name(device)
    cases: list[Case] = []
    with tempfile.TemporaryDirectory(prefix="gpu-bench-") as tmp:
        work = Path(tmp)
        weights = work / "weights"
        os.environ[WEIGHTS_ENV] = str(weights)
        sources, warm_ups, decodes = {}, {}, {}
        for size, (width, height) in sizes.items():
            clip, short = work / f"{size}.mp4", work / f"{size}-warm-up.mp4"
            make_clip(clip, width, height, frames)
            make_clip(short, width, height, WARM_UP_FRAMES)
            sources[size] = SegmentInput(url=str(clip), video=probe(clip).video)
            warm_ups[size] = SegmentInput(url=str(short), video=probe(short).video)
            decodes[size] = decode_seconds(sources[size])
        encodes: dict[tuple[str, str], float] = {}

        def each(engine_name: str, model: str, engine: Any) -> None:
            for size, (width, height) in sizes.items():
                warm_up(engine, warm_ups[size], model, work)
                own = None
                if isinstance(engine, BuiltinEngine):
                    own = round(depth_fps(engine, model, width, height), 2)
                for fmt in FORMATS:
                    case = Case(
                        engine_name, model, size, width, height, fmt.value, frames, device,
                        name, args.encoder, getattr(engine, "batch_size", None),
                    )  # fmt: skip
                    case.depth_fps = own
                    run_case(case, engine, sources[size], encoding, work, encodes, decodes[size])
                    cases.append(case)
                    print(json.dumps(asdict(case)), file=sys.stderr, flush=True)

        for model in ARCHITECTURES:
            save_random_depth_anything(
                weights, model, TINY_ARCHITECTURE if args.tiny else ARCHITECTURES[model]
            )
            engine: Any = BuiltinEngine(options)
            engine.prepare(FORMATS[0], model)
            each("builtin", model, engine)
            release(engine)
        if not args.skip_iw3:
            os.environ.setdefault("STEREO_IW3_METHOD", IW3_METHOD)
            engine = get_engine("iw3", options)
            engine.prepare(FORMATS[0], IW3_DEPTH_MODEL)
            each("iw3", IW3_DEPTH_MODEL, engine)
            release(engine)

    args.out.write_text("".join(json.dumps(asdict(case)) + "\n" for case in cases))
    print(table(cases))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
