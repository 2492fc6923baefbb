"""What an engine is: it converts one window of the source into one stereo segment file."""

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from stereo_infer.encoding import VideoEncoding
from stereo_infer.engines.formats import StereoFormat
from stereo_infer.errors import BadInputError
from stereo_infer.progress import ProgressReporter
from stereo_infer.settings import checked
from stereo_infer.window import SegmentInput
from stereo_types.backend import BatchSize
from stereo_types.seams import DepthTrace

DEVICE_AUTO = "auto"


@dataclass(frozen=True)
class EngineOptions:
    """How an engine runs (not what it makes): the same for every job it serves."""

    # "auto" (CUDA when torch sees one, else CPU), "cpu", "cuda" or "cuda:N".
    device: str = DEVICE_AUTO
    # Frames per forward pass; None: the engine's default for the device.
    batch_size: int | None = None

    def __post_init__(self) -> None:
        device = self.device
        if device not in (DEVICE_AUTO, "cpu", "cuda") and not (
            device.startswith("cuda:") and device[5:].isdigit()
        ):
            raise BadInputError(f"device must be auto, cpu, cuda or cuda:N: {device!r}")
        if self.batch_size is not None:
            checked("batch size", BatchSize, self.batch_size)


@dataclass(frozen=True)
class EngineJob:
    # The source and the window of it to decode (pre-roll frames first: warm-up only, they
    # must not reach the output).
    input: SegmentInput
    # A local path; the caller publishes it once the engine returns.
    output_path: Path
    stereo_format: StereoFormat
    divergence: float
    convergence: float
    # The output's encoder settings (the VideoJob's codec, crf and preset).
    encoding: VideoEncoding = field(default_factory=VideoEncoding)
    # Depth-estimation model name; None: the engine's default.
    depth_model: str | None = None


class Engine(Protocol):
    """Source window in, file out: engines decode and encode with ffmpeg themselves.

    The output must hold exactly the window's frames minus the pre-roll, at the
    plan's constant frame rate, without B-frames (pts == dts), so that
    segment outputs join by stream copy.
    """

    name: str

    def prepare(self, stereo_format: StereoFormat, depth_model: str | None) -> None:
        """Refuse (BadInputError) what this engine cannot make, and load what it needs.

        Called before any input is fetched, so a request the engine cannot
        serve fails in a second, not after a download. Loaded models stay
        loaded: a server calls this once at start and again per request.
        """
        ...

    def convert(
        self, job: EngineJob, progress: ProgressReporter | None = None
    ) -> DepthTrace | None:
        """Write ``job.output_path``; return the depth trace of its frames where the engine
        sees its depth maps (for the seam score), else None."""
        ...
