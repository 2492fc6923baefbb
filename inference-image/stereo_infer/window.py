"""Decoding one segment's part of the source: the ffmpeg arguments for a ``SourceWindow``.

The demuxer seeks to the window's keyframe (a range read on an http source), timestamps stay
the source's own (``-copyts``), a ``select`` keeps the frames the window names, a variable-rate
source goes through the same rate filter a single pass would, and frames are restamped onto
the exact output grid. ``-frames:v`` stops the decoder as soon as the window is full, so a
segment reads from its keyframe to its last frame and no further.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from stereo_infer.encoding import VideoEncoding
from stereo_infer.ffmpeg import run_ffmpeg
from stereo_infer.framerate import FrameRate
from stereo_infer.probe import VideoInfo
from stereo_infer.progress import ProgressReporter
from stereo_infer.source import FFMPEG_HTTP_INPUT_ARGS
from stereo_types.plan import GridTiming, SourceWindow

# H.264 at qp 0 keeps the decoded pixels bit for bit.
LOSSLESS = VideoEncoding()


@dataclass(frozen=True)
class SegmentInput:
    """What an engine decodes: the source (path or URL), and its window (None: every frame)."""

    url: str
    video: VideoInfo
    window: SourceWindow | None = None
    # Leading frames to drop when there is no window (a whole file converted by hand).
    pre_roll_frames: int = 0

    @property
    def rate(self) -> FrameRate:
        """The output's constant rate: the grid's for a normalised variable-rate window (a
        container may claim a constant rate its timestamps deny), else the source's."""
        grid = self.window.grid if self.window is not None else None
        if grid is not None:
            return FrameRate(num=grid.rate_num, den=grid.rate_den)
        return self.video.frame_rate

    @property
    def decoded_frames(self) -> int:
        """Frames the decode yields, pre-roll included."""
        if self.window is not None:
            return self.window.output_frames
        return self.video.frame_count

    @property
    def pre_roll(self) -> int:
        if self.window is not None:
            return self.window.pre_roll_frames
        return self.pre_roll_frames

    @property
    def output_frames(self) -> int:
        """Frames the engine must write: the decoded ones less the pre-roll."""
        return self.decoded_frames - self.pre_roll

    def decode_args(self, *, drop_pre_roll: bool, then: tuple[str, ...] = ()) -> list[str]:
        """ffmpeg's input, stream and filter options that decode the window onto the output
        grid (``then``: more filters after it), stopping once the window is complete; the
        output options follow."""
        chain = ",".join([*self._filters(drop_pre_roll=drop_pre_roll), *then])
        args = [*self._input_args(), "-map", f"0:{self.video.index}", "-vf", chain]
        return [*args, *self._frame_limit(drop_pre_roll=drop_pre_roll)]

    def _input_args(self) -> list[str]:
        """ffmpeg input options and the input itself."""
        remote = FFMPEG_HTTP_INPUT_ARGS if self.url.startswith("http") else []
        if self.window is None:
            return [*remote, "-i", self.url]
        seek = self.window.seek_seconds
        args = [] if seek is None else ["-ss", f"{seek:.6f}", "-noaccurate_seek"]
        return [*remote, *args, "-copyts", "-i", self.url]

    def _filters(self, *, drop_pre_roll: bool) -> list[str]:
        """The filter chain from decoded frames to frames on the output grid, in order."""
        chain = [] if self.window is None else window_filters(self.window, self.rate)
        if drop_pre_roll and self.pre_roll:
            chain.append(f"trim=start_frame={self.pre_roll}")
        # Timestamps from frame numbers: exact even where the source's drift.
        chain.append(f"setpts=N/({self.rate}*TB)")
        return chain

    def _frame_limit(self, *, drop_pre_roll: bool) -> list[str]:
        """Output option that stops the decoder once the window is complete."""
        frames = self.output_frames if drop_pre_roll else self.decoded_frames
        return ["-frames:v", str(frames)]


def window_filters(window: SourceWindow, rate: FrameRate) -> list[str]:
    chain = [f"select='between(pts\\,{window.first_pts}\\,{window.last_pts})'"]
    if window.grid is not None:
        chain += grid_filters(window, window.grid, rate)
    return chain


def grid_filters(window: SourceWindow, grid: GridTiming, rate: FrameRate) -> list[str]:
    """Put a variable-rate window on the output grid exactly as one pass over the source would.

    ffmpeg's rate filter rounds each frame's time as it sees it: a single pass sees times
    from the file's start, a window its raw timestamps (``-copyts``), and the two can round
    a half differently. So each frame is first stamped with its own slot, counted from the
    file's start in integers (a time base fine enough to hold both the source's ticks and
    the output's slots exactly); the rate filter then only repeats and drops, with no
    rounding left to differ.
    """
    time_base = Fraction(window.time_base_num, window.time_base_den)
    ticks = math.lcm(time_base.denominator, rate.num)  # per second
    per_slot = ticks * rate.den // rate.num
    zero = grid.zero_pts * time_base.numerator * (ticks // time_base.denominator)
    # slot = round((pts - zero) / per_slot), halves up, in exact integers.
    slot = f"floor((2*(PTS-{zero})+{per_slot})/{2 * per_slot})"
    start = Fraction(grid.start_slot) / rate.fraction
    return [
        f"settb=1/{ticks}",
        f"setpts='{slot}*{per_slot}'",
        f"fps=fps={rate}:start_time={float(start):.9f}",
    ]


def decode_to_file(
    source: SegmentInput,
    output: Path,
    *,
    drop_pre_roll: bool,
    progress: ProgressReporter | None = None,
) -> None:
    """The window's frames, losslessly encoded into a local file (for engines that read files)."""
    run_ffmpeg(
        [
            *source.decode_args(drop_pre_roll=drop_pre_roll),
            *LOSSLESS.args(source.rate, source.video),
            str(output),
        ],
        progress=progress,
    )
