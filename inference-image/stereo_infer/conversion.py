"""One segment conversion, the same for ``stereo-infer convert`` and the HTTP server.

The engine reads the segment's window straight from the source (``stereo_infer.source``: a
local file, or range reads from the store), writes a local file, and the file is checked
(frame count) and published in one step, after the engine's depth trace where it has one
(``stereo_types.seams``).
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from stereo_infer import metrics
from stereo_infer.encoding import VideoEncoding
from stereo_infer.engines import Engine, EngineJob
from stereo_infer.engines.formats import StereoFormat
from stereo_infer.errors import BadInputError, MediaError
from stereo_infer.framerate import FrameRate
from stereo_infer.io import publish_output
from stereo_infer.probe import count_frames, probe
from stereo_infer.progress import ProgressReporter
from stereo_infer.source import open_source
from stereo_infer.window import SegmentInput
from stereo_types.plan import SourceWindow
from stereo_types.seams import DepthTrace, depth_trace_uri


class NoFramesLeft(BadInputError):
    """The pre-roll takes every frame of the input."""


@dataclass(frozen=True)
class ConversionRequest:
    input_uri: str
    output_uri: str
    stereo_format: StereoFormat
    divergence: float
    convergence: float
    encoding: VideoEncoding
    depth_model: str | None = None
    # The frames of the source this segment owns; None: every frame of the input.
    window: SourceWindow | None = None
    # Leading frames to drop when there is no window (a window carries its own).
    pre_roll_frames: int = 0


@dataclass(frozen=True)
class ConversionResult:
    frames: int
    wall_seconds: float
    input_bytes: int
    rate: FrameRate

    @property
    def video_seconds(self) -> float:
        return self.frames / float(self.rate)


def convert(
    engine: Engine, request: ConversionRequest, *, device: str, show_progress: bool
) -> ConversionResult:
    """Convert ``request``'s input with ``engine`` (already prepared) and publish the output."""
    started = time.monotonic()
    with (
        open_source(request.input_uri) as source,
        tempfile.TemporaryDirectory(prefix="stereo-convert-") as tmp,
    ):
        segment = _segment_input(source.url, request)
        name = request.output_uri.rstrip("/").rsplit("/", 1)[-1]
        out = Path(tmp) / f"output{Path(name).suffix or '.mp4'}"
        job = EngineJob(
            input=segment,
            output_path=out,
            stereo_format=request.stereo_format,
            divergence=request.divergence,
            convergence=request.convergence,
            encoding=request.encoding,
            depth_model=request.depth_model,
        )
        expected = segment.output_frames
        progress = ProgressReporter(engine.name, expected) if show_progress else None
        trace = engine.convert(job, progress)
        produced = count_frames(out)
        if progress is not None:
            progress.finish(produced)
        if produced != expected:
            raise MediaError(f"engine {engine.name} wrote {produced} frames, expected {expected}")
        if trace is not None and request.window is not None:
            # A VideoJob's segment: the trace goes first, so it is there once the output is.
            _publish_trace(trace, request.output_uri, Path(tmp))
        publish_output(out, request.output_uri)
        # What the segment read of the source: counted at the gateway, else its window's share.
        input_bytes = source.bytes_read() or _window_bytes(request.window, source.size)
    result = ConversionResult(
        frames=produced,
        wall_seconds=time.monotonic() - started,
        input_bytes=input_bytes,
        rate=segment.rate,
    )
    metrics.report(
        metrics.Conversion(
            engine=engine.name,
            format=request.stereo_format.value,
            frames=result.frames,
            wall_seconds=result.wall_seconds,
            input_bytes=result.input_bytes,
            device=device,
        )
    )
    return result


def _segment_input(url: str, request: ConversionRequest) -> SegmentInput:
    window = request.window
    # A window needs no frame count from the container: it carries its own.
    info = probe(url, count=window is None)
    if window is not None and window.stream_index != info.video.index:
        raise BadInputError(
            f"the window names stream {window.stream_index}, but the source's video is"
            f" stream {info.video.index}: was the source replaced after planning?"
        )
    segment = SegmentInput(
        url=url, video=info.video, window=window, pre_roll_frames=request.pre_roll_frames
    )
    if segment.output_frames <= 0:
        raise NoFramesLeft(
            f"pre-roll {segment.pre_roll} leaves no frames of {segment.decoded_frames}"
        )
    return segment


def _publish_trace(trace: DepthTrace, output_uri: str, scratch: Path) -> None:
    local = scratch / "depth.json"
    local.write_text(trace.model_dump_json(by_alias=True), encoding="utf-8")
    publish_output(local, depth_trace_uri(output_uri))


def _window_bytes(window: SourceWindow | None, size: int) -> int:
    return window.bytes if window is not None and window.bytes else size
