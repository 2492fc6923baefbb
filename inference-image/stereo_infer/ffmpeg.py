"""Running ffmpeg and ffprobe as subprocesses, with error classification.

Media never passes through Python memory: the tools read and write files on
local disk and we only parse their small JSON or progress output.
"""

import json
import subprocess
import tempfile
from collections.abc import Sequence
from typing import IO, Any

from stereo_infer.errors import (
    BadInputError,
    MediaError,
    StereoInferError,
    ToolMissingError,
    TransientError,
)
from stereo_infer.progress import ProgressReporter

FFMPEG = "ffmpeg"
FFPROBE = "ffprobe"
_STDERR_TAIL_LINES = 15

# Messages that mean "the data is bad", so a retry would fail the same way.
_BAD_INPUT_MARKERS = (
    "Invalid data found when processing input",
    "does not contain any stream",
    "No such file or directory",
    "moov atom not found",
    "EBML header parsing failed",
)
# Messages that mean "the environment failed", so a retry may succeed.
_TRANSIENT_MARKERS = (
    "No space left on device",
    "Cannot allocate memory",
    "Connection reset",
    "Connection timed out",
)


def run_ffprobe_json(args: Sequence[str]) -> dict[str, Any]:
    """Run ffprobe with JSON output and return the parsed document."""
    cmd = [FFPROBE, "-v", "error", "-of", "json", *args]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    except FileNotFoundError as exc:
        raise ToolMissingError(f"{FFPROBE} is not installed") from exc
    if done.returncode != 0:
        raise classify_failure(FFPROBE, done.returncode, done.stderr)
    try:
        parsed = json.loads(done.stdout or "{}")
    except json.JSONDecodeError as exc:
        raise MediaError(f"{FFPROBE} printed invalid JSON: {exc}") from exc
    if not isinstance(parsed, dict):
        raise MediaError(f"{FFPROBE} printed unexpected JSON: {parsed!r:.200}")
    return parsed


def run_ffmpeg(args: Sequence[str], *, progress: ProgressReporter | None = None) -> None:
    """Run ffmpeg; report its frame counter to ``progress``; raise a classified error."""
    cmd = [FFMPEG, "-nostdin", "-hide_banner", "-nostats", "-loglevel", "error", "-y"]
    if progress is not None:
        cmd += ["-progress", "pipe:1"]
    cmd += list(args)
    # stderr goes to a temp file so a chatty ffmpeg cannot block on a full pipe
    # while we read progress from stdout.
    with tempfile.TemporaryFile(mode="w+", encoding="utf-8", errors="replace") as err:
        try:
            proc = subprocess.Popen(
                cmd,
                stdout=subprocess.PIPE if progress is not None else subprocess.DEVNULL,
                stderr=err,
                text=True,
            )
        except FileNotFoundError as exc:
            raise ToolMissingError(f"{FFMPEG} is not installed") from exc
        try:
            if progress is not None and proc.stdout is not None:
                _follow_progress(proc.stdout, progress)
            returncode = proc.wait()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        if returncode != 0:
            err.seek(0)
            raise classify_failure(FFMPEG, returncode, err.read())


def _follow_progress(stdout: IO[str], progress: ProgressReporter) -> None:
    for line in stdout:
        key, _, value = line.strip().partition("=")
        if key == "frame" and value.isdigit():
            progress.update(int(value))


def classify_failure(tool: str, returncode: int, stderr: str) -> StereoInferError:
    tail = "\n".join(stderr.strip().splitlines()[-_STDERR_TAIL_LINES:])
    message = f"{tool} failed (exit {returncode}): {tail or 'no error output'}"
    # A negative code is a signal (OOM killer, eviction); 255 is ffmpeg's own
    # exit code after SIGTERM/SIGINT.
    if returncode < 0 or returncode == 255:
        return TransientError(message)
    if any(marker in stderr for marker in _TRANSIENT_MARKERS):
        return TransientError(message)
    if any(marker in stderr for marker in _BAD_INPUT_MARKERS):
        return BadInputError(message)
    return MediaError(message)
