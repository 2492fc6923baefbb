"""The ``copy`` engine: a stand-in that passes frames through unchanged.

It ignores the stereo settings, the depth model and the encoder settings: its output
holds exactly the input's frames after the pre-roll, so pipeline tests can compare
them bit for bit.
"""

import shutil

from stereo_infer.encoding import VideoEncoding
from stereo_infer.engines.base import EngineJob
from stereo_infer.engines.formats import StereoFormat
from stereo_infer.ffmpeg import run_ffmpeg
from stereo_infer.progress import ProgressReporter

_LOSSLESS = VideoEncoding()


class CopyEngine:
    name = "copy"

    def prepare(self, stereo_format: StereoFormat, depth_model: str | None) -> None:
        """Every format and model name is accepted (and ignored)."""

    def convert(self, job: EngineJob, progress: ProgressReporter | None = None) -> None:
        if job.pre_roll_frames == 0:
            if job.input_path.suffix == job.output_path.suffix:
                shutil.copyfile(job.input_path, job.output_path)
            else:
                run_ffmpeg(
                    ["-i", str(job.input_path), "-map", "0", "-c", "copy", str(job.output_path)]
                )
            return
        # Frames after the pre-roll are not keyframes, so dropping the pre-roll
        # needs a re-encode; lossless H.264 keeps the frames themselves unchanged.
        video = job.source.video
        trim = f"trim=start_frame={job.pre_roll_frames},setpts=N/({video.frame_rate}*TB)"
        run_ffmpeg(
            [
                "-i",
                str(job.input_path),
                "-map",
                f"0:{video.index}",
                "-vf",
                trim,
                *_LOSSLESS.args(video.frame_rate, video),
                str(job.output_path),
            ],
            progress=progress,
        )
