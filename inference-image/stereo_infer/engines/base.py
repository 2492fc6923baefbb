"""What an engine is: it converts one segment file into one stereo segment file."""

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from stereo_infer.encoding import VideoEncoding
from stereo_infer.engines.formats import StereoFormat
from stereo_infer.probe import MediaInfo
from stereo_infer.progress import ProgressReporter


@dataclass(frozen=True)
class EngineJob:
    input_path: Path
    # A local path; the caller publishes it once the engine returns.
    output_path: Path
    # The probed input, so engines need not probe again.
    source: MediaInfo
    stereo_format: StereoFormat
    divergence: float
    convergence: float
    # Leading input frames that are warm-up only and must not reach the output.
    pre_roll_frames: int = 0
    # The output's encoder settings (the VideoJob's codec, crf and preset).
    encoding: VideoEncoding = field(default_factory=VideoEncoding)
    # Depth-estimation model name; None: the engine's default.
    depth_model: str | None = None


class Engine(Protocol):
    """File in, file out: engines decode and encode with ffmpeg themselves.

    The output must hold exactly the input's frames minus the pre-roll, at the
    input's constant frame rate, without B-frames (pts == dts), so that
    segment outputs join by stream copy.
    """

    name: str

    def convert(self, job: EngineJob, progress: ProgressReporter | None = None) -> None: ...
