"""Tiny test videos and frame readers for the engine and server tests (real ffmpeg)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np

FFMPEG = ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y"]


def make_testsrc(path: Path, *, size: str = "160x90", rate: int = 30, frames: int = 12) -> Path:
    """A testsrc2 clip of ``frames`` frames, x264 with B-frames like a real source."""
    if not path.exists():
        seconds = frames / rate
        subprocess.run(
            [
                *FFMPEG,
                "-f",
                "lavfi",
                "-i",
                f"testsrc2=size={size}:rate={rate}:duration={seconds}",
                "-c:v",
                "libx264",
                "-preset",
                "ultrafast",
                "-bf",
                "2",
                "-pix_fmt",
                "yuv420p",
                str(path),
            ],
            check=True,
        )
    return path


def scene_frame(width: int, height: int, square: int, *, seed: int = 0) -> np.ndarray:
    """A bright square (near) centred over a dark, textured background (far); uint8 RGB."""
    rng = np.random.default_rng(seed)
    background = rng.integers(10, 60, size=(height, width, 1), dtype=np.uint8)
    frame = np.repeat(background, 3, axis=2)
    # Vertical stripes give the background texture a horizontal structure.
    frame[:, ::8] = 70
    top, left = (height - square) // 2, (width - square) // 2
    frame[top : top + square, left : left + square] = 250
    return frame


def write_frames(path: Path, frames: list[np.ndarray], rate: int = 30) -> Path:
    """Encode RGB frames losslessly (x264 4:4:4 at qp 0) so they come back as written."""
    height, width = frames[0].shape[:2]
    args = [*FFMPEG, "-f", "rawvideo", "-pix_fmt", "rgb24", "-video_size", f"{width}x{height}"]
    args += ["-framerate", str(rate), "-i", "pipe:0", "-c:v", "libx264", "-qp", "0"]
    args += ["-preset", "ultrafast", "-pix_fmt", "yuv444p", str(path)]
    subprocess.run(args, input=b"".join(f.tobytes() for f in frames), check=True)
    return path


def stream_info(path: Path) -> dict[str, object]:
    out = subprocess.run(
        [
            "ffprobe",
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=width,height,codec_name,pix_fmt,has_b_frames,nb_frames,r_frame_rate",
            "-of",
            "json",
            str(path),
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    streams = json.loads(out)["streams"]
    assert isinstance(streams, list)
    info = streams[0]
    assert isinstance(info, dict)
    return info


def packets(path: Path) -> list[tuple[int, int]]:
    """(pts, dts) of every video packet, in file order."""
    out = subprocess.run(
        [
            "ffprobe",
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-show_entries",
            "packet=pts,dts",
            "-of",
            "csv=p=0",
            str(path),
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    rows = [line.split(",") for line in out.split()]
    return [(int(pts), int(dts)) for pts, dts in rows]


def read_frames(path: Path) -> np.ndarray:
    """Every decoded frame as ``(N, H, W, 3)`` uint8 RGB."""
    info = stream_info(path)
    width, height = int(str(info["width"])), int(str(info["height"]))
    raw = subprocess.run(
        [
            *FFMPEG,
            "-i",
            str(path),
            "-map",
            "0:v:0",
            "-fps_mode",
            "passthrough",
            "-f",
            "rawvideo",
            "-pix_fmt",
            "rgb24",
            "pipe:1",
        ],
        check=True,
        capture_output=True,
    ).stdout
    return np.frombuffer(raw, dtype=np.uint8).reshape(-1, height, width, 3)


def square_centre(view: np.ndarray) -> float:
    """Mean column of the bright square's pixels in the middle rows of a view."""
    rows = view[80:100].mean(axis=2)
    columns = np.nonzero(rows > 200)[1]
    assert len(columns) > 0
    return float(columns.mean())


def assert_anaglyph_follows_the_views(sbs: np.ndarray, anaglyph: np.ndarray) -> None:
    """Red follows the left view's square, green and blue the right view's (a 640-wide
    full-SBS frame of the scene clip and its anaglyph)."""
    left_centre, right_centre = square_centre(sbs[:, :320]), square_centre(sbs[:, 320:])
    red = anaglyph[80:100, :, 0].astype(float)
    cyan = anaglyph[80:100, :, 1:].mean(axis=2)
    red_centre = float(np.nonzero(red > 150)[1].mean())
    cyan_centre = float(np.nonzero(cyan > 150)[1].mean())
    assert abs(red_centre - left_centre) < 2
    assert abs(cyan_centre - right_centre) < 2
    assert red_centre > cyan_centre + 3
