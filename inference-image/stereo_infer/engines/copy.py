"""The ``copy`` engine: a stand-in that passes frames through unchanged.

It ignores the stereo settings, the depth model and the encoder settings: its output holds
exactly the window's frames after the pre-roll, losslessly encoded, so pipeline tests can
compare them bit for bit with a single-pass decode of the source.
"""

from stereo_infer.engines.base import EngineJob
from stereo_infer.engines.formats import StereoFormat
from stereo_infer.progress import ProgressReporter
from stereo_infer.window import decode_to_file


class CopyEngine:
    name = "copy"

    def prepare(self, stereo_format: StereoFormat, depth_model: str | None) -> None:
        """Every format and model name is accepted (and ignored)."""

    def convert(self, job: EngineJob, progress: ProgressReporter | None = None) -> None:
        decode_to_file(job.input, job.output_path, drop_pre_roll=True, progress=progress)
