"""Progress lines on stderr: frames done / total and throughput.

Pod logs are line oriented, so we print whole lines at a bounded rate instead of
redrawing one line with carriage returns.
"""

import sys
import time
from typing import TextIO


class ProgressReporter:
    def __init__(
        self,
        label: str,
        total_frames: int | None,
        *,
        stream: TextIO | None = None,
        interval_s: float = 2.0,
    ) -> None:
        self.label = label
        self.total_frames = total_frames
        self._stream = stream
        self._interval_s = interval_s
        self._started = time.monotonic()
        self._last_print = float("-inf")
        self._frames = 0

    def update(self, frames_done: int, *, force: bool = False) -> None:
        self._frames = frames_done
        now = time.monotonic()
        if force or now - self._last_print >= self._interval_s:
            self._last_print = now
            self._emit(now)

    def finish(self, frames_done: int | None = None) -> None:
        """Print the final line; ``frames_done`` corrects a counter that saw one output only."""
        self.update(self._frames if frames_done is None else frames_done, force=True)

    def format_line(self, now: float | None = None) -> str:
        elapsed = (time.monotonic() if now is None else now) - self._started
        fps = self._frames / elapsed if elapsed > 0 else 0.0
        if self.total_frames:
            pct = 100.0 * self._frames / self.total_frames
            done = f"{self._frames}/{self.total_frames} frames ({pct:.1f}%)"
        else:
            done = f"{self._frames} frames"
        return f"[{self.label}] {done} {fps:.1f} fps"

    def _emit(self, now: float) -> None:
        # Resolve stderr late so pytest's capture (and redirects) see the lines.
        stream = self._stream if self._stream is not None else sys.stderr
        print(self.format_line(now), file=stream, flush=True)
