"""A PNG preview of one frame: what the builtin engine sees and makes of it.

The picture, on a dark background, with a small caption band above each row::

    LEFT                 RIGHT
    [left view]  [gap]  [right view]
    DEPTH
           [depth map, centred]

The views are the builtin engine's (its depth estimator and view synthesis, as
``convert`` runs them, frame for frame); the depth map is its nearness in a
colour ramp whose brightness grows with nearness (near is bright). Captions
are drawn with a built-in 5x7 pixel font, so no font or imaging library is
needed, and the PNG is written by a small encoder of our own (zlib).
"""

from __future__ import annotations

import math
import struct
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from stereo_infer.engines.base import EngineOptions
from stereo_infer.engines.builtin import BuiltinEngine
from stereo_infer.engines.depth import DepthEstimator, StreamState
from stereo_infer.engines.dibr import render_views
from stereo_infer.engines.rawvideo import colour_matrix, colour_range
from stereo_infer.errors import BadInputError, MediaError
from stereo_infer.ffmpeg import run_ffmpeg
from stereo_infer.io import fetch_input, publish_output
from stereo_infer.probe import VideoInfo, probe
from stereo_infer.settings import checked
from stereo_types.formats import (
    DEFAULT_CONVERGENCE,
    DEFAULT_DIVERGENCE,
    Convergence,
    DepthModel,
    Divergence,
)

BACKGROUND = (24, 24, 24)
TEXT = (235, 235, 235)
# Nearness 0 (far) .. 1 (near); the luma of the stops rises, so near reads as bright.
DEPTH_RAMP = ((0, 0, 4), (81, 18, 124), (183, 55, 121), (252, 137, 97), (252, 253, 191))
# Rows of each glyph, top to bottom, "1" is ink.
_FONT = {
    "D": "11110/10001/10001/10001/10001/10001/11110",
    "E": "11111/10000/10000/11110/10000/10000/11111",
    "F": "11111/10000/10000/11110/10000/10000/10000",
    "G": "01110/10001/10000/10111/10001/10001/01111",
    "H": "10001/10001/10001/11111/10001/10001/10001",
    "I": "01110/00100/00100/00100/00100/00100/01110",
    "L": "10000/10000/10000/10000/10000/10000/11111",
    "P": "11110/10001/10001/11110/10000/10000/10000",
    "R": "11110/10001/10001/11110/10100/10010/10001",
    "T": "11111/00100/00100/00100/00100/00100/00100",
}
GLYPH_W, GLYPH_H = 5, 7
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@dataclass(frozen=True)
class PreviewSettings:
    """What to show: the frame at ``at`` seconds, with the VideoJob's stereo settings (and
    their rules: a value the VideoJob refuses, the preview refuses)."""

    at: float
    divergence: float = DEFAULT_DIVERGENCE
    convergence: float = DEFAULT_CONVERGENCE
    # None: the engine's default (the VideoJob's if its weights are present, else the prior).
    depth_model: str | None = None

    def __post_init__(self) -> None:
        if not math.isfinite(self.at) or self.at < 0:
            raise BadInputError(f"--at must be a time >= 0 in seconds: {self.at}")
        checked("divergence", Divergence, self.divergence)
        checked("convergence", Convergence, self.convergence)
        if self.depth_model is not None:
            checked("depth model", DepthModel, self.depth_model)


@dataclass(frozen=True)
class PreviewLayout:
    """Where each panel sits in the picture, for a ``width`` x ``height`` frame."""

    width: int
    height: int

    @property
    def scale(self) -> int:
        """Caption pixels per font pixel: legible on large frames, small on tiny ones."""
        return max(1, self.height // 160)

    @property
    def band(self) -> int:
        return (GLYPH_H + 4) * self.scale

    @property
    def gap(self) -> int:
        return 4 * self.scale

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the whole picture."""
        return 2 * self.width + self.gap, 2 * (self.band + self.height)

    @property
    def left(self) -> tuple[int, int]:
        """(x, y) of the left view's top-left corner."""
        return 0, self.band

    @property
    def right(self) -> tuple[int, int]:
        return self.width + self.gap, self.band

    @property
    def depth(self) -> tuple[int, int]:
        return (self.size[0] - self.width) // 2, 2 * self.band + self.height


@dataclass(frozen=True)
class PreviewResult:
    layout: PreviewLayout
    depth_model: str
    frame_index: int


def make_preview(
    source: str, out: str, settings: PreviewSettings, options: EngineOptions | None = None
) -> PreviewResult:
    """Write the preview PNG of ``source`` (a path or URI) to ``out`` (a path or URI)."""
    engine = BuiltinEngine(options or EngineOptions())
    # Refuses an unknown or absent model before any download.
    estimator = engine.estimator(settings.depth_model)
    with tempfile.TemporaryDirectory(prefix="stereo-preview-") as tmp:
        work = Path(tmp)
        path = fetch_input(source, work / "input")
        video = probe(path).video
        index = frame_index(video, settings.at, source)
        frame = decode_frame(path, video, index, work / "frame.rgb")
        left, right, nearness = stereo_views(engine.device, estimator, frame, settings)
        layout = PreviewLayout(frame.shape[1], frame.shape[0])
        png = work / "preview.png"
        png.write_bytes(encode_png(compose(layout, left, right, nearness)))
        publish_output(png, out)
    return PreviewResult(layout, engine.model_name(settings.depth_model), index)


def frame_index(video: VideoInfo, at: float, name: str) -> int:
    """The frame on screen at ``at`` seconds from the start; refuses a time past the end."""
    if at >= video.duration_seconds:
        raise BadInputError(
            f"--at {at:g} s is past the end of {name} ({video.duration_seconds:.3f} s long)"
        )
    return min(video.frame_count - 1, int(at * float(video.frame_rate.fraction)))


def decode_frame(path: Path, video: VideoInfo, index: int, scratch: Path) -> np.ndarray:
    """Frame ``index`` of ``video`` as ``(H, W, 3)`` uint8 RGB, decoded as the engine decodes.

    The seek lands half a frame before the frame's timestamp: ffmpeg drops every
    frame stamped before the seek point, so rounding cannot skip the wanted one.
    """
    width, height = video.display_size
    seek = max(0.0, (index - 0.5) / float(video.frame_rate.fraction))
    scale = f"scale=in_color_matrix={colour_matrix(video)}:in_range={colour_range(video)}"
    args = ["-ss", f"{seek:.6f}", "-i", str(path), "-map", f"0:{video.index}", "-frames:v", "1"]
    args += ["-vf", f"{scale},format=rgb24", "-f", "rawvideo", "-pix_fmt", "rgb24", str(scratch)]
    run_ffmpeg(args)
    data = scratch.read_bytes()
    if len(data) != width * height * 3:
        raise MediaError(
            f"decoding frame {index} of {path.name} gave {len(data)} bytes,"
            f" expected {width * height * 3} ({width}x{height} RGB)"
        )
    return np.frombuffer(data, dtype=np.uint8).reshape(height, width, 3)


@torch.inference_mode()
def stereo_views(
    device: torch.device, estimator: DepthEstimator, frame: np.ndarray, settings: PreviewSettings
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The (left, right) uint8 views and the float nearness map of one RGB frame."""
    x = torch.from_numpy(frame.copy()).to(device)
    x = x.permute(2, 0, 1).unsqueeze(0).float().div_(255.0)
    nearness = estimator.estimate(x, StreamState())
    left, right = render_views(x, nearness, settings.divergence, settings.convergence)
    return _to_rgb(left), _to_rgb(right), nearness[0, 0].float().cpu().numpy()


def _to_rgb(view: torch.Tensor) -> np.ndarray:
    # The same rounding as the engine's output frames.
    out = view[0].mul(255.0).round_().clamp_(0, 255).to(torch.uint8)
    result: np.ndarray = out.permute(1, 2, 0).contiguous().cpu().numpy()
    return result


def depth_colours(nearness: np.ndarray) -> np.ndarray:
    """``(H, W)`` nearness in 0..1 -> ``(H, W, 3)`` uint8 through DEPTH_RAMP."""
    stops = np.linspace(0.0, 1.0, len(DEPTH_RAMP))
    values = np.clip(nearness, 0.0, 1.0)
    channels = [np.interp(values, stops, [c[i] for c in DEPTH_RAMP]) for i in range(3)]
    return np.stack(channels, axis=-1).round().astype(np.uint8)


def compose(
    layout: PreviewLayout, left: np.ndarray, right: np.ndarray, nearness: np.ndarray
) -> np.ndarray:
    """The whole picture as ``(H, W, 3)`` uint8 (see the module docstring)."""
    width, height = layout.size
    canvas = np.empty((height, width, 3), dtype=np.uint8)
    canvas[:] = BACKGROUND
    for (x, y), image, label in (
        (layout.left, left, "LEFT"),
        (layout.right, right, "RIGHT"),
        (layout.depth, depth_colours(nearness), "DEPTH"),
    ):
        canvas[y : y + layout.height, x : x + layout.width] = image
        pad = 2 * layout.scale
        draw_text(canvas, label, x + pad, y - layout.band + pad, layout.scale)
    return canvas


def draw_text(canvas: np.ndarray, text: str, x: int, y: int, scale: int) -> None:
    """Draw ``text`` (letters of _FONT and spaces) with its top-left corner at (x, y)."""
    for i, char in enumerate(text):
        if char == " ":
            continue
        rows = _FONT[char].split("/")
        glyph = np.array([[c == "1" for c in row] for row in rows])
        ink = np.kron(glyph, np.ones((scale, scale), dtype=bool))
        left = x + i * (GLYPH_W + 1) * scale
        region = canvas[y : y + ink.shape[0], left : left + ink.shape[1]]
        region[ink[: region.shape[0], : region.shape[1]]] = TEXT


def encode_png(rgb: np.ndarray) -> bytes:
    """An 8-bit RGB PNG of ``(H, W, 3)`` uint8 pixels (no filtering, zlib level 6)."""
    height, width, _ = rgb.shape
    # Every scanline starts with its filter type: 0, none.
    lines = np.zeros((height, 1 + width * 3), dtype=np.uint8)
    lines[:, 1:] = rgb.reshape(height, width * 3)
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        PNG_SIGNATURE
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(lines.tobytes(), 6))
        + _chunk(b"IEND", b"")
    )


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
