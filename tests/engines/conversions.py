"""One whole-file conversion through an engine, as the engine tests run it."""

from __future__ import annotations

from pathlib import Path

from stereo_infer.encoding import VideoEncoding
from stereo_infer.engines import Engine, EngineJob
from stereo_infer.engines.formats import StereoFormat
from stereo_infer.probe import probe
from stereo_infer.window import SegmentInput


def convert_file(
    engine: Engine,
    source: Path,
    out: Path,
    fmt: StereoFormat,
    *,
    depth_model: str,
    encoding: VideoEncoding,
    divergence: float = 4.0,
    convergence: float = 0.5,
    pre_roll: int = 0,
) -> Path:
    """``source`` converted by ``engine`` into ``out``, its first ``pre_roll`` frames dropped."""
    engine.convert(
        EngineJob(
            input=SegmentInput(str(source), probe(source).video, pre_roll_frames=pre_roll),
            output_path=out,
            stereo_format=fmt,
            divergence=divergence,
            convergence=convergence,
            encoding=encoding,
            depth_model=depth_model,
        )
    )
    return out
