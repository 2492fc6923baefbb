"""Depth-image-based rendering: a stereo pair from one frame and its nearness map.

Geometry (iw3's convention, so one VideoJob looks alike in both engines):

* ``nearness`` is 0..1, 1 nearest. ``convergence`` is the nearness of the screen
  plane: pixels at that nearness keep zero disparity, nearer ones come out of
  the screen, farther ones go behind it. 0 puts the farthest point on the
  screen (everything in front), 1 the nearest (everything behind).
* ``divergence`` is the largest disparity between the two views, in percent of
  the frame width, reached between nearness 0 and 1. Each eye gets half:
  ``shift = 0.5 * divergence / 100 * width * (nearness - convergence)`` pixels,
  added to x in the left view and subtracted in the right one. A near object
  therefore sits further right in the left view than in the right view
  (crossed disparity), as it does for two eyes.

Rendering is a horizontal forward warp (every source pixel is splatted to the
nearest target column of its row):

* occlusion: where several source pixels land on one target the nearest wins
  (z-ordering by a ``scatter_reduce(amax)`` on a key packing the quantised
  nearness above the source column, so the result is deterministic on CPU and
  CUDA alike);
* holes (disoccluded background, cracks where a surface stretches): each takes
  the source pixel of the nearest filled target along its row, on the side
  where a disocclusion always has its background: a gap opens in the left
  view where nearness grows to the right (the left side is the background),
  and in the right view where it falls, so the left view fills from the
  left and the right view from the right (the other side at the frame edge).
  This is background-biased filling without comparing depths.

Everything is whole-tensor work (no per-pixel Python loops); holes are handled
only where they are, through a sorted search among the filled positions.
"""

from __future__ import annotations

import torch

# The z-order key packs the quantised nearness above the source column in an
# int32: 30 bits in all, at most 16 of them for the nearness.
_KEY_BITS = 30
_MAX_LEVEL_BITS = 16


def eye_shift(
    nearness: torch.Tensor, divergence: float, convergence: float, width: int
) -> torch.Tensor:
    """Per-eye horizontal shift in pixels (positive: rightwards in the left view)."""
    return (0.5 * divergence / 100.0 * width) * (nearness - convergence)


def forward_warp(
    image: torch.Tensor, nearness: torch.Tensor, shift: torch.Tensor, *, fill_from_left: bool
) -> torch.Tensor:
    """Move each pixel of ``image`` ``shift`` columns along its row; nearest wins; fill holes.

    image: ``(N, C, H, W)``; nearness and shift: ``(N, 1, H, W)``. Returns ``(N, C, H, W)``.
    """
    n, channels, height, width = image.shape
    device = image.device
    col_bits = max(1, (width - 1).bit_length())
    level_bits = min(_MAX_LEVEL_BITS, _KEY_BITS - col_bits)
    if level_bits < 1:
        raise ValueError(f"frame too wide for the z-order key: {width}")
    columns = torch.arange(width, device=device, dtype=torch.int32)

    target = (shift[:, 0].float() + columns.float()).round_()
    inside = (target >= 0) & (target <= width - 1)
    level = nearness[:, 0].float().clamp(0.0, 1.0).mul_((1 << level_bits) - 1).round_()
    # Larger key: nearer; at equal nearness, the source further right.
    key = (level.to(torch.int32) << col_bits) | columns
    key.masked_fill_(~inside, -1)
    rows = torch.arange(n * height, device=device).view(n, height, 1) * width
    dest = (target.clamp_(0, width - 1).long() + rows).view(-1)
    winner = torch.full((n * height * width,), -1, dtype=torch.int32, device=device)
    winner.scatter_reduce_(0, dest, key.view(-1), reduce="amax", include_self=True)

    filled = winner >= 0
    holes = (~filled).nonzero().squeeze(1)
    if holes.numel():
        _fill_holes(winner, filled, holes, width, fill_from_left)

    source = (winner & ((1 << col_bits) - 1)).long().view(n, 1, height, width)
    return image.gather(3, source.expand(n, channels, height, width))


def _fill_holes(
    winner: torch.Tensor, filled: torch.Tensor, holes: torch.Tensor, width: int, from_left: bool
) -> None:
    """Give every hole (in place) the key of its nearest filled neighbour along the row."""
    valid = filled.nonzero().squeeze(1)
    own_column = (holes % width).to(torch.int32)
    if valid.numel() == 0:
        # Nothing landed anywhere: show the source as it is.
        winner[holes] = own_column
        return
    # Filled positions before each hole; the neighbours are around that point.
    before = torch.searchsorted(valid, holes)
    left = valid[(before - 1).clamp(min=0)]
    right = valid[before.clamp(max=valid.numel() - 1)]
    row_start = holes - holes % width
    has_left = (before > 0) & (left >= row_start)
    has_right = (before < valid.numel()) & (right < row_start + width)
    none = torch.full_like(holes, -1)
    if from_left:
        pick = torch.where(has_left, left, torch.where(has_right, right, none))
    else:
        pick = torch.where(has_right, right, torch.where(has_left, left, none))
    # A row where nothing landed keeps its own source pixels.
    winner[holes] = torch.where(pick >= 0, winner[pick.clamp(min=0)], own_column)


def render_views(
    image: torch.Tensor, nearness: torch.Tensor, divergence: float, convergence: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """The (left, right) views of ``image`` ``(N, C, H, W)`` for a nearness map ``(N, 1, H, W)``."""
    if divergence == 0:
        return image, image
    shift = eye_shift(nearness, divergence, convergence, image.shape[-1])
    left = forward_warp(image, nearness, shift, fill_from_left=True)
    right = forward_warp(image, nearness, -shift, fill_from_left=False)
    return left, right
