"""The ``builtin`` engine: depth estimation and depth-image-based rendering in torch.

    ffmpeg decode -> RGB frames -> [reader thread] -> bounded queue
      -> batch on the device: depth (depth.py) -> left/right views (dibr.py)
         -> packed frame (packing.py) -> integer samples
      -> bounded queue -> [writer thread] -> ffmpeg encode (x264/x265, -bf 0)

Frames are 8 bits per sample, or 16 for a source of more than 8 (rawvideo.Samples):
a 10-bit HDR source stays 10-bit from decode to encode, in float on the device.

Decoding and encoding run in their own ffmpeg processes fed by two threads,
so on a GPU they overlap with the compute; the queues hold at most a few
batches, so memory is bounded whatever the video's length. The device is
CUDA when torch sees one (or as ``EngineOptions.device`` says), else the CPU;
the neural depth model runs under fp16 autocast on CUDA. When the device runs
out of memory, the batch is halved and the conversion goes on in the same
process (``render_fitting``).

Pre-roll frames are decoded and then dropped. A temporal depth estimator
(one that carries state across frames) still sees them, to warm up; a
stateless one skips the compute for them. The output holds every remaining
frame, stamped ``i / rate`` from 0, so the frame count and timestamps match
the input's after the pre-roll exactly.
"""

from __future__ import annotations

import copy
import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from stereo_infer.engines.base import EngineJob, EngineOptions
from stereo_infer.engines.depth import (
    DepthEstimator,
    StreamState,
    check_depth_model,
    default_depth_model,
    load_depth_model,
)
from stereo_infer.engines.device import cpu_threads, default_batch_size, resolve_device
from stereo_infer.engines.dibr import render_views
from stereo_infer.engines.formats import StereoFormat, output_size
from stereo_infer.engines.packing import pack
from stereo_infer.engines.rawvideo import FrameDecoder, FrameEncoder
from stereo_infer.errors import MediaError, TransientError
from stereo_infer.progress import ProgressReporter
from stereo_types.seams import DepthTrace

_log = logging.getLogger(__name__)

# Batches waiting between the stages: enough to keep each stage busy.
QUEUE_DEPTH = 2
_POLL_S = 0.1


class _End:
    """Marks the end of a stream in a queue."""


_END = _End()


class _Stopped(Exception):
    """Another stage failed; this one gives up quietly."""


@dataclass
class _Failure:
    error: BaseException | None = None


class BuiltinEngine:
    name = "builtin"

    def __init__(self, options: EngineOptions | None = None) -> None:
        self.options = options or EngineOptions()
        self.device = resolve_device(self.options.device)
        self.batch_size = self.options.batch_size or default_batch_size(self.device)
        # Frames one render may take: the batch size until the device runs out of memory.
        self.fit = self.batch_size
        if self.device.type == "cpu":
            # Process-wide: a converting process runs one engine.
            torch.set_num_threads(cpu_threads())
        self._models: dict[str, DepthEstimator] = {}
        self._default_model: str | None = None
        self._lock = threading.Lock()

    def model_name(self, depth_model: str | None) -> str:
        if depth_model is not None:
            return depth_model
        if self._default_model is None:
            self._default_model = default_depth_model()
        return self._default_model

    def prepare(self, stereo_format: StereoFormat, depth_model: str | None) -> None:
        # Every StereoFormat is packed by packing.pack; only the model can be refused.
        self.estimator(depth_model)

    def estimator(self, depth_model: str | None) -> DepthEstimator:
        """The loaded estimator for ``depth_model``, loading it on first use."""
        name = self.model_name(depth_model)
        with self._lock:
            if name not in self._models:
                check_depth_model(name)
                self._models[name] = load_depth_model(name, self.device)
            return self._models[name]

    def convert(self, job: EngineJob, progress: ProgressReporter | None = None) -> DepthTrace:
        """Convert ``job``; the depth trace of the frames written (for the seam score)."""
        estimator = self.estimator(job.depth_model)
        video = job.input.video
        width, height = video.display_size
        out_w, out_h = output_size(job.stereo_format, width, height)
        # A stateless estimator need not see the pre-roll at all.
        pre_roll = job.input.pre_roll
        skip = 0 if estimator.temporal else pre_roll
        drop = pre_roll - skip
        state = StreamState()
        means: list[float] = []

        def render(batch: np.ndarray) -> np.ndarray:
            frames, nearness = self.render_fitting(batch, estimator, state, job)
            means.extend(nearness.tolist())
            return frames

        decoder = FrameDecoder(job.input)
        try:
            encoder = FrameEncoder(
                job.output_path, out_w, out_h, job.input.rate, job.encoding, video
            )
        except BaseException:
            decoder.kill()
            raise
        _Pipeline(decoder, encoder, self.batch_size, skip, drop, render, progress).run()
        # The pipeline drops the first ``drop`` rendered frames: so does the trace.
        return DepthTrace(means=means[drop:])

    def render_fitting(
        self, batch: np.ndarray, estimator: DepthEstimator, state: StreamState, job: EngineJob
    ) -> tuple[np.ndarray, np.ndarray]:
        """``render`` in chunks of at most ``fit`` frames, halving ``fit`` whenever the
        device runs out of memory and going on in the same process, the stream's state
        as it was before the failed chunk."""
        done: list[tuple[np.ndarray, np.ndarray]] = []
        start = 0
        while start < len(batch):
            chunk = batch[start : start + self.fit]
            before = copy.copy(state)
            try:
                done.append(self.render(chunk, estimator, state, job))
            except torch.OutOfMemoryError as exc:
                if len(chunk) == 1:
                    raise TransientError(f"out of device memory for a single frame: {exc}") from exc
                vars(state).update(vars(before))
                self.fit = len(chunk) // 2
                _log.warning(
                    "out of device memory at %d frames a batch: now %d", len(chunk), self.fit
                )
                if self.device.type == "cuda":
                    torch.cuda.empty_cache()
                continue
            start += len(chunk)
        if len(done) == 1:
            return done[0]
        return np.concatenate([f for f, _ in done]), np.concatenate([m for _, m in done])

    @torch.inference_mode()
    def render(
        self, batch: np.ndarray, estimator: DepthEstimator, state: StreamState, job: EngineJob
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(N, H, W, 3)`` frames -> packed ``(N, H', W', 3)`` stereo frames, in the
        integer type of ``batch`` (uint8, or uint16 for a deep source), and each frame's
        mean nearness."""
        top = float(np.iinfo(batch.dtype).max)
        frames = torch.from_numpy(batch)
        if self.device.type == "cuda":
            frames = frames.pin_memory().to(self.device, non_blocking=True)
        x = frames.permute(0, 3, 1, 2).float().div_(top)
        nearness = estimator.estimate(x, state)
        left, right = render_views(x, nearness, job.divergence, job.convergence)
        packed = pack(job.stereo_format, left, right)
        out = packed.mul(top).round_().clamp_(0, top).to(frames.dtype)
        means = nearness.float().mean(dim=(1, 2, 3))
        return out.permute(0, 2, 3, 1).contiguous().cpu().numpy(), means.cpu().numpy()


def _bytes_of(array: np.ndarray) -> memoryview:
    """A writable byte view of a C-contiguous array (no copy)."""
    return memoryview(array.data).cast("B")


class _Pipeline:
    """Reader thread -> compute (the calling thread) -> writer thread, with bounded queues."""

    def __init__(
        self,
        decoder: FrameDecoder,
        encoder: FrameEncoder,
        batch_size: int,
        skip: int,
        drop: int,
        render: Callable[[np.ndarray], np.ndarray],
        progress: ProgressReporter | None,
    ) -> None:
        self.decoder = decoder
        self.encoder = encoder
        self.batch_size = batch_size
        self.skip = skip
        self.drop = drop
        self.render = render
        self.progress = progress
        self.inbox: queue.Queue[object] = queue.Queue(maxsize=QUEUE_DEPTH)
        self.outbox: queue.Queue[object] = queue.Queue(maxsize=QUEUE_DEPTH)
        self.stop = threading.Event()
        self.reader_failure = _Failure()
        self.writer_failure = _Failure()
        self.written = 0

    def run(self) -> None:
        reader = threading.Thread(target=self._read, name="builtin-decode", daemon=True)
        writer = threading.Thread(target=self._write, name="builtin-encode", daemon=True)
        reader.start()
        writer.start()
        try:
            self._compute()
            writer.join()
            reader.join()
            self._raise_failure()
            self.decoder.finish()
            self.encoder.finish()
        except BaseException as exc:
            self.stop.set()
            self.decoder.kill()
            self.encoder.kill()
            reader.join(timeout=10)
            writer.join(timeout=10)
            if isinstance(exc, _Stopped):
                self._raise_failure()
            raise
        if self.progress is not None:
            self.progress.update(self.written, force=True)

    def _raise_failure(self) -> None:
        for failure in (self.writer_failure, self.reader_failure):
            if failure.error is not None:
                raise failure.error

    def _compute(self) -> None:
        to_drop = self.drop
        while True:
            item = self._get(self.inbox)
            if isinstance(item, _End):
                break
            assert isinstance(item, np.ndarray)
            frames = self.render(item)
            if to_drop:
                dropped = min(to_drop, len(frames))
                frames = frames[dropped:]
                to_drop -= dropped
            if len(frames):
                self._put(self.outbox, frames)
        self._put(self.outbox, _END)

    def _read(self) -> None:
        try:
            height, width = self.decoder.height, self.decoder.width
            seen = 0
            done = False
            while not done:
                shape = (self.batch_size, height, width, 3)
                batch = np.empty(shape, dtype=self.decoder.samples.dtype)
                count = 0
                while count < self.batch_size:
                    if not self.decoder.read_into(_bytes_of(batch[count])):
                        done = True
                        break
                    seen += 1
                    if seen > self.skip:
                        count += 1
                if count:
                    self._put(self.inbox, batch[:count])
            self._put(self.inbox, _END)
        except _Stopped:
            pass
        except BaseException as exc:
            self.reader_failure.error = exc
            self.stop.set()

    def _write(self) -> None:
        try:
            while True:
                item = self._get(self.outbox)
                if isinstance(item, _End):
                    break
                assert isinstance(item, np.ndarray)
                try:
                    self.encoder.stdin.write(_bytes_of(item))
                except (BrokenPipeError, ValueError):
                    # The encoder died: its own error says why.
                    self.encoder.finish()
                    raise MediaError("encoder stopped reading frames") from None
                self.written += len(item)
                if self.progress is not None:
                    self.progress.update(self.written)
            self.encoder.close_input()
        except _Stopped:
            pass
        except BaseException as exc:
            self.writer_failure.error = exc
            self.stop.set()

    def _put(self, q: queue.Queue[object], item: object) -> None:
        while True:
            if self.stop.is_set():
                raise _Stopped
            try:
                q.put(item, timeout=_POLL_S)
                return
            except queue.Full:
                continue

    def _get(self, q: queue.Queue[object]) -> object:
        while True:
            if self.stop.is_set():
                raise _Stopped
            try:
                return q.get(timeout=_POLL_S)
            except queue.Empty:
                continue
