"""Depth estimators for the builtin engine, behind one small interface.

Every estimator maps a batch of RGB frames, ``(N, 3, H, W)`` floats in 0..1 on
the compute device, to a *nearness* map ``(N, 1, H, W)`` in 0..1 where 1 is
the nearest point of the frame and 0 the farthest (the disparity-like
convention the renderer and iw3 use: convergence is a nearness value).

Two estimators ship:

``Prior`` (weight-free, deterministic, cheap)
    A monocular-cue heuristic for tests and CPU runs, not for quality. At a
    working height of at most 128 rows it blends the luma (bright, lit
    surfaces read as near) with the row position (the lower in the frame, the
    nearer: a ground plane seen from eye height), 60 % / 40 %, smooths that
    with a guided filter steered by the luma (a box of about 1/16 of the
    width: flat and low-contrast texture averages out, strong edges stay
    sharp, so an object's outline keeps the object's depth), then scales back
    up bilinearly. Identical input gives identical depth, frame by frame, so
    it needs no warm-up.

``Any_V2_S`` / ``Any_V2_B`` / ``Any_V2_L`` (Depth Anything V2 through ``transformers``)
    Loaded only from local files, never downloaded: the directory named by
    ``STEREO_DEPTH_WEIGHTS`` (holding ``config.json`` and the weights, or a
    sub-directory named after the model), else the Hugging Face cache
    (``HF_HUB_CACHE`` / ``HF_HOME``). A missing directory is refused with an
    error naming the paths looked at. Its relative inverse depth is mapped to
    0..1 per frame by the 2nd and 98th percentiles, smoothed across frames
    with an exponential moving average, so it is *temporal*: pre-roll frames
    must pass through it to warm the average.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch
import torch.nn.functional as F

from stereo_infer.errors import ModelUnavailableError
from stereo_types.formats import DEFAULT_DEPTH_MODEL, DEPTH_ANYTHING_WARM_UP_FRAMES

PRIOR = "Prior"
# Our model names (iw3's spelling, so one VideoJob setting serves both engines)
# -> Hugging Face repositories holding the transformers port.
DEPTH_ANYTHING_REPOS = {
    "Any_V2_S": "depth-anything/Depth-Anything-V2-Small-hf",
    "Any_V2_B": "depth-anything/Depth-Anything-V2-Base-hf",
    "Any_V2_L": "depth-anything/Depth-Anything-V2-Large-hf",
}
DEPTH_MODELS = (PRIOR, *DEPTH_ANYTHING_REPOS)
WEIGHTS_ENV = "STEREO_DEPTH_WEIGHTS"
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
TRANSFORMERS_REQUIREMENT = "transformers>=4.45"


class DepthModelUnavailableError(ModelUnavailableError):
    """A depth model this image cannot run: unknown, or its weights or library missing."""


@dataclass
class StreamState:
    """What an estimator carries from frame to frame within one video (one segment).

    Kept by the caller, one per conversion, so one loaded model can serve
    several conversions at once.
    """

    # Depth Anything: the moving (low, high) range of its raw output.
    range: torch.Tensor | None = None


class DepthEstimator(Protocol):
    name: str
    # True when a frame's estimate depends on earlier frames of the segment.
    temporal: bool
    # Frames a segment must see first for its estimates to match a single pass (pre-roll).
    warm_up_frames: int

    def estimate(self, frames: torch.Tensor, state: StreamState) -> torch.Tensor:
        """``(N, 3, H, W)`` RGB in 0..1 -> ``(N, 1, H, W)`` float32 nearness in 0..1."""
        ...


# BT.709 luma weights.
_LUMA = (0.2126, 0.7152, 0.0722)


def _box(x: torch.Tensor, kernel: int) -> torch.Tensor:
    return F.avg_pool2d(
        x, kernel_size=kernel, stride=1, padding=kernel // 2, count_include_pad=False
    )


def guided_filter(guide: torch.Tensor, src: torch.Tensor, kernel: int, eps: float) -> torch.Tensor:
    """Edge-preserving smoothing of ``src`` steered by ``guide`` (He, Sun and Tang's guided filter).

    Locally ``src`` is fitted as ``a * guide + b`` over a ``kernel`` box; where
    the guide's variance is well below ``eps`` the fit is flat (smoothing),
    where it is well above it follows the guide's edges.
    """
    mean_g = _box(guide, kernel)
    mean_s = _box(src, kernel)
    cov = _box(guide * src, kernel) - mean_g * mean_s
    var = _box(guide * guide, kernel) - mean_g * mean_g
    a = cov / (var + eps)
    b = mean_s - a * mean_g
    return _box(a, kernel) * guide + _box(b, kernel)


class PriorDepth:
    """The weight-free monocular-cue estimator (see the module docstring)."""

    name = PRIOR
    temporal = False
    warm_up_frames = 0
    work_height = 128
    luma_weight = 0.6
    row_weight = 0.4
    # Luma variance (0..1 scale) below which the guided filter smooths across.
    edge_eps = 0.01

    def estimate(self, frames: torch.Tensor, state: StreamState | None = None) -> torch.Tensor:
        n, _, height, width = frames.shape
        work_h = min(height, self.work_height)
        work_w = max(1, round(width * work_h / height))
        x = frames.float()
        if (work_h, work_w) != (height, width):
            x = F.interpolate(
                x, size=(work_h, work_w), mode="bilinear", antialias=True, align_corners=False
            )
        weights = torch.tensor(_LUMA, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
        luma = (x * weights).sum(dim=1, keepdim=True)
        rows = torch.linspace(0.0, 1.0, work_h, device=x.device, dtype=x.dtype)
        cue = self.luma_weight * luma + self.row_weight * rows.view(1, 1, work_h, 1)
        # A box about 1/16 of the width: depth follows regions, not texture.
        kernel = max(3, (work_w // 16) | 1)
        nearness = guided_filter(luma, cue, kernel, self.edge_eps).clamp(0.0, 1.0)
        if (work_h, work_w) != (height, width):
            nearness = F.interpolate(
                nearness, size=(height, width), mode="bilinear", align_corners=False
            )
        return nearness.expand(n, 1, height, width).contiguous()


class DepthAnythingDepth:
    """Depth Anything V2 through ``transformers``, from local weights only."""

    temporal = True
    # The model's patch size; inputs are resized to multiples of it.
    patch = 14
    input_height = 518
    mean = (0.485, 0.456, 0.406)
    std = (0.229, 0.224, 0.225)
    low_q, high_q = 0.02, 0.98
    # Weight of the previous frames' range in the moving average.
    ema = 0.8
    # Frames until the average has forgotten where it started (to 1 %).
    warm_up_frames = DEPTH_ANYTHING_WARM_UP_FRAMES

    def __init__(self, name: str, weights: Path, device: torch.device) -> None:
        self.name = name
        self.weights = weights
        self.device = device
        try:
            from transformers import AutoModelForDepthEstimation
        except ImportError as exc:  # checked by locate_weights; a broken install
            raise DepthModelUnavailableError(
                f"depth model {name!r} needs {TRANSFORMERS_REQUIREMENT!r}: {exc}"
            ) from exc
        try:
            model: Any = AutoModelForDepthEstimation.from_pretrained(
                str(weights), local_files_only=True
            )
        except (OSError, ValueError) as exc:
            raise DepthModelUnavailableError(
                f"cannot load depth model {name!r} from {weights}: {exc}"
            ) from exc
        self.model = model.to(device).eval()

    @torch.inference_mode()
    def estimate(self, frames: torch.Tensor, state: StreamState) -> torch.Tensor:
        n, _, height, width = frames.shape
        in_h = self.input_height
        in_w = max(self.patch, round(width * in_h / height / self.patch) * self.patch)
        x = F.interpolate(
            frames.float(), size=(in_h, in_w), mode="bilinear", antialias=True, align_corners=False
        )
        mean = torch.tensor(self.mean, device=x.device).view(1, 3, 1, 1)
        std = torch.tensor(self.std, device=x.device).view(1, 3, 1, 1)
        x = (x - mean) / std
        with torch.autocast(
            device_type=self.device.type, dtype=torch.float16, enabled=self.device.type == "cuda"
        ):
            # Relative inverse depth: larger is nearer.
            raw = self.model(pixel_values=x).predicted_depth
        raw = raw.float().reshape(n, 1, raw.shape[-2], raw.shape[-1])
        ranges = self._smoothed_ranges(raw, state)
        low, high = ranges[:, 0].view(n, 1, 1, 1), ranges[:, 1].view(n, 1, 1, 1)
        nearness = ((raw - low) / (high - low).clamp_min(1e-6)).clamp(0.0, 1.0)
        return F.interpolate(nearness, size=(height, width), mode="bilinear", align_corners=False)

    def _smoothed_ranges(self, raw: torch.Tensor, state: StreamState) -> torch.Tensor:
        """Per frame (low, high) percentiles, averaged over the segment's frames so far."""
        flat = raw.flatten(1)
        if flat.shape[1] > 65536:  # quantile has an input size limit; a sample suffices
            flat = flat[:, :: flat.shape[1] // 65536 + 1]
        q = torch.tensor([self.low_q, self.high_q], device=raw.device)
        per_frame = torch.quantile(flat, q, dim=1).T  # (N, 2)
        out = torch.empty_like(per_frame)
        previous = state.range
        for i in range(per_frame.shape[0]):
            current = per_frame[i]
            if previous is not None:
                current = self.ema * previous + (1 - self.ema) * current
            previous = current
            out[i] = previous
        state.range = previous
        return out


@dataclass(frozen=True)
class WeightsSearch:
    """Where a model's weights were looked for, for the error message."""

    model: str
    candidates: tuple[Path, ...]


def _hf_cache_dir() -> Path:
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]) / "hub"
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".cache"
    return base / "huggingface" / "hub"


def _has_weights(directory: Path) -> bool:
    return (directory / "config.json").is_file() and any(
        (directory / name).is_file() for name in WEIGHT_FILES
    )


def _hf_snapshot(repo: str) -> tuple[Path, Path | None]:
    """The repository's cache folder and its snapshot holding weights, if any."""
    folder = _hf_cache_dir() / ("models--" + repo.replace("/", "--"))
    ref = folder / "refs" / "main"
    if ref.is_file():
        snapshot = folder / "snapshots" / ref.read_text().strip()
        if _has_weights(snapshot):
            return folder, snapshot
    snapshots = folder / "snapshots"
    if snapshots.is_dir():
        for snapshot in sorted(snapshots.iterdir()):
            if _has_weights(snapshot):
                return folder, snapshot
    return folder, None


def locate_weights(name: str) -> Path:
    """The local directory holding ``name``'s weights; never downloads.

    Raises DepthModelUnavailableError naming every path looked at.
    """
    repo = DEPTH_ANYTHING_REPOS[name]
    root = os.environ.get(WEIGHTS_ENV)
    if root:
        candidates = (Path(root) / name, Path(root))
        for candidate in candidates:
            if _has_weights(candidate):
                return candidate
        looked = " or ".join(str(c) for c in candidates)
        raise DepthModelUnavailableError(
            f"depth model {name!r}: no weights in {WEIGHTS_ENV}={root} (looked for config.json"
            f" and {' or '.join(WEIGHT_FILES)} in {looked}); put the {repo} files there"
        )
    folder, snapshot = _hf_snapshot(repo)
    if snapshot is None:
        raise DepthModelUnavailableError(
            f"depth model {name!r}: weights not found: {folder} holds no snapshot of {repo}"
            f" with config.json and {' or '.join(WEIGHT_FILES)}, and {WEIGHTS_ENV} is not set;"
            " this image never downloads weights: bake them into the image or mount them"
            f" and set {WEIGHTS_ENV}"
        )
    return snapshot


def transformers_installed() -> bool:
    return importlib.util.find_spec("transformers") is not None


def check_depth_model(name: str) -> None:
    """Refuse, without loading anything heavy, a model this image cannot run."""
    if name == PRIOR:
        return
    if name not in DEPTH_ANYTHING_REPOS:
        raise DepthModelUnavailableError(
            f"the builtin engine has no depth model {name!r};"
            f" choose one of: {', '.join(DEPTH_MODELS)}"
        )
    locate_weights(name)
    if not transformers_installed():
        raise DepthModelUnavailableError(
            f"depth model {name!r} needs the transformers package, which is not installed"
            f" in this image (pip install {TRANSFORMERS_REQUIREMENT!r}); the weight-free"
            f" {PRIOR!r} model needs nothing"
        )


def default_depth_model() -> str:
    """The VideoJob's default model where its weights are present, else the weight-free prior."""
    try:
        check_depth_model(DEFAULT_DEPTH_MODEL)
    except DepthModelUnavailableError as exc:
        print(f"stereo-infer: depth model {PRIOR} (weight-free): {exc}", file=sys.stderr)
        return PRIOR
    return DEFAULT_DEPTH_MODEL


def load_depth_model(name: str, device: torch.device) -> DepthEstimator:
    check_depth_model(name)
    if name == PRIOR:
        return PriorDepth()
    return DepthAnythingDepth(name, locate_weights(name), device)
