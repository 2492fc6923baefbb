"""Raw RGB frames through ffmpeg pipes: one decoder in, one encoder out.

Frames stream through: the caller reads one frame (or a small batch) at a
time, so memory stays bounded whatever the video's length. Both ends convert
between YUV and RGB with the same, explicit colour matrix and range (the
source's, BT.601 limited range when untagged, as ffmpeg assumes), so a frame
that passes through unchanged comes out with the colours it went in with.

A source of more than 8 bits (10-bit HDR above all) goes through 16 bits per
sample (``rgb48le``) and comes out 10-bit, so gradients do not band.
"""

from __future__ import annotations

import contextlib
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

from stereo_infer.encoding import VideoEncoding
from stereo_infer.engines.formats import FrameSize, encoded_size
from stereo_infer.errors import MediaError, ToolMissingError
from stereo_infer.ffmpeg import FFMPEG, classify_failure
from stereo_infer.framerate import FrameRate
from stereo_infer.probe import VideoInfo
from stereo_infer.window import SegmentInput

_BASE = [FFMPEG, "-nostdin", "-hide_banner", "-nostats", "-loglevel", "error", "-y"]
# ffprobe's colour space names -> the scale filter's matrix names.
_MATRICES = {
    "bt709": "bt709",
    "bt470bg": "bt601",
    "smpte170m": "bt601",
    "bt2020nc": "bt2020",
    "bt2020c": "bt2020",
    "smpte240m": "smpte240m",
    "fcc": "fcc",
}


def colour_matrix(video: VideoInfo) -> str:
    return _MATRICES.get(video.color_space or "", "bt601")


def colour_range(video: VideoInfo) -> str:
    return "full" if video.color_range in ("pc", "jpeg") else "limited"


@dataclass(frozen=True)
class Samples:
    """How frames cross the pipes: 8 bits per sample, or 16 for a deeper source."""

    pix_fmt: str
    dtype: type[np.unsignedinteger[Any]]
    max_value: int
    deep: bool

    @property
    def bytes_per_pixel(self) -> int:
        return 3 * np.dtype(self.dtype).itemsize


EIGHT_BIT = Samples("rgb24", np.uint8, 255, deep=False)
SIXTEEN_BIT = Samples("rgb48le", np.uint16, 65535, deep=True)


def samples_for(video: VideoInfo) -> Samples:
    return SIXTEEN_BIT if video.bit_depth > 8 else EIGHT_BIT


def output_pix_fmt(*, deep: bool) -> str:
    """4:2:0, what players expect (a 4:2:2 or 4:4:4 source is converted on purpose), in
    10 bits for a deep source."""
    return "yuv420p10le" if deep else "yuv420p"


class _Process:
    """An ffmpeg child whose stderr goes to a temp file (a full pipe cannot block it)."""

    def __init__(self, args: list[str], *, stdin: int | None, stdout: int | None) -> None:
        self.args = args
        self._stderr = tempfile.TemporaryFile(  # noqa: SIM115 (closed by finish or kill)
            mode="w+", encoding="utf-8", errors="replace"
        )
        try:
            self.proc = subprocess.Popen(
                [*_BASE, *args], stdin=stdin, stdout=stdout, stderr=self._stderr
            )
        except FileNotFoundError as exc:
            self._stderr.close()
            raise ToolMissingError(f"{FFMPEG} is not installed") from exc

    def finish(self) -> None:
        """Wait for the child; raise its classified failure."""
        try:
            returncode = self.proc.wait()
            if returncode != 0:
                self._stderr.seek(0)
                raise classify_failure(FFMPEG, returncode, self._stderr.read())
        finally:
            self._stderr.close()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        if not self._stderr.closed:
            self._stderr.close()


class FrameDecoder(_Process):
    """Decodes a segment's window to packed RGB frames of ``width`` x ``height``, with the
    ``samples`` the source's bit depth calls for.

    Pre-roll frames come first; the engine decides what to do with them.
    """

    def __init__(self, source: SegmentInput) -> None:
        video = source.video
        self.samples = samples_for(video)
        # ffmpeg turns rotated video upright, so frames have the display size.
        self.width, self.height = video.display_size
        self.frame_bytes = self.width * self.height * self.samples.bytes_per_pixel
        pix_fmt = self.samples.pix_fmt
        scale = (
            f"scale=in_color_matrix={colour_matrix(video)}:in_range={colour_range(video)},"
            f"format={pix_fmt}"
        )
        args = source.decode_args(drop_pre_roll=False, then=(scale,))
        # Every selected frame once, none duplicated or dropped.
        args += ["-fps_mode", "passthrough", "-f", "rawvideo", "-pix_fmt", pix_fmt, "pipe:1"]
        super().__init__(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE)

    def read_into(self, buffer: memoryview) -> bool:
        """Fill ``buffer`` (one frame) from the pipe; False at the end of the stream."""
        stdout = self.proc.stdout
        assert stdout is not None
        filled = 0
        while filled < len(buffer):
            got = stdout.readinto(buffer[filled:])  # type: ignore[attr-defined]
            if not got:
                break
            filled += got
        if filled == 0:
            return False
        if filled != len(buffer):
            # A truncated last frame: ffmpeg died mid-frame; finish() says why.
            self.finish()
            raise MediaError(f"decoder stopped mid-frame ({filled} of {len(buffer)} bytes)")
        return True


class FrameEncoder(_Process):
    """Encodes packed RGB frames (of the source's ``samples``) written to its stdin, at a
    constant ``rate``."""

    def __init__(
        self,
        output: Path,
        width: int,
        height: int,
        rate: FrameRate,
        encoding: VideoEncoding,
        colour_of: VideoInfo,
    ) -> None:
        self.width, self.height = width, height
        samples = samples_for(colour_of)
        out_fmt = output_pix_fmt(deep=samples.deep)
        scale = (
            f"scale=out_color_matrix={colour_matrix(colour_of)}:"
            f"out_range={colour_range(colour_of)},format={out_fmt}"
        )
        even = encoded_size(FrameSize(width, height))
        if even != (width, height):
            scale = f"pad={even.width}:{even.height},{scale}"
        args = ["-f", "rawvideo", "-pix_fmt", samples.pix_fmt, "-video_size", f"{width}x{height}"]
        # Frame i is stamped i / rate: the output starts at 0 on the exact grid.
        args += ["-framerate", str(rate), "-i", "pipe:0", "-map", "0:v", "-vf", scale]
        args += [*encoding.args(rate, colour_of), str(output)]
        super().__init__(args, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)

    @property
    def stdin(self) -> IO[bytes]:
        assert self.proc.stdin is not None
        return self.proc.stdin

    def close_input(self) -> None:
        self.stdin.close()
