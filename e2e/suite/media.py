"""The sample video and what ffprobe says about a video: frames, size, audio."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SECONDS = 4
SIZE = (320, 180)
RATE = 24
_STREAM_FIELDS = "codec_type,width,height,nb_read_frames,duration"


def make_sample(path: Path) -> Path:
    """A few seconds of test pattern with a sine tone (the conversion keeps the audio)."""
    w, h = SIZE
    subprocess.run(
        [
            "ffmpeg", "-nostdin", "-loglevel", "error", "-y",
            "-f", "lavfi", "-i", f"testsrc2=size={w}x{h}:rate={RATE}:duration={SECONDS}",
            "-f", "lavfi", "-i", f"sine=frequency=440:duration={SECONDS}",
            "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest", str(path),
        ],
        check=True,
        timeout=120,
    )  # fmt: skip
    return path


@dataclass(frozen=True)
class Probe:
    frames: int
    width: int
    height: int
    audio_seconds: float | None


@dataclass(frozen=True)
class Sample:
    """The sample as uploaded, and what it holds."""

    uri: str
    probe: Probe


def probe(path: Path) -> Probe:
    """Decoded frame count (not the container's claim), frame size, audio duration."""
    out = subprocess.run(
        [
            "ffprobe", "-v", "error", "-count_frames",
            "-show_entries", f"stream={_STREAM_FIELDS}:stream_tags=DURATION",
            "-of", "json", str(path),
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout  # fmt: skip
    streams = json.loads(out)["streams"]
    video = next(s for s in streams if s["codec_type"] == "video")
    audio = next((s for s in streams if s["codec_type"] == "audio"), None)
    return Probe(
        frames=int(video["nb_read_frames"]),
        width=int(video["width"]),
        height=int(video["height"]),
        audio_seconds=_duration(audio) if audio else None,
    )


def _duration(stream: dict[str, Any]) -> float | None:
    if "duration" in stream:
        return float(stream["duration"])
    # Matroska keeps a stream's duration in a tag, as HH:MM:SS.fraction.
    tag = stream.get("tags", {}).get("DURATION")
    if not tag:
        return None
    hours, minutes, seconds = tag.split(":")
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)
