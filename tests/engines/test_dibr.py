"""Depth-image-based rendering on synthetic scenes with known depth maps."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from stereo_infer.engines.dibr import eye_shift, forward_warp, render_views

W, H = 200, 40
SQUARE = (80, 120)  # columns of the near square


def scene() -> tuple[torch.Tensor, torch.Tensor]:
    """A white square (nearness 1) over a dark striped background (nearness 0)."""
    image = torch.full((1, 3, H, W), 0.1)
    image[..., ::5] = 0.3  # texture
    image[..., SQUARE[0] : SQUARE[1]] = 1.0
    nearness = torch.zeros(1, 1, H, W)
    nearness[..., SQUARE[0] : SQUARE[1]] = 1.0
    return image, nearness


def white_columns(view: torch.Tensor) -> np.ndarray:
    return np.flatnonzero((view[0, 0] > 0.99).all(dim=0).numpy())


def test_shift_formula() -> None:
    near = torch.tensor([0.0, 0.5, 1.0])
    # 4 % of 1000 px between nearness 0 and 1: +-20 px per eye; 0.5 is the screen.
    assert eye_shift(near, 4.0, 0.5, 1000).tolist() == [-10.0, 0.0, 10.0]


@pytest.mark.parametrize("divergence", [2.0, 5.0, 10.0])
def test_near_object_has_crossed_disparity_growing_with_divergence(divergence: float) -> None:
    image, nearness = scene()
    left, right = render_views(image, nearness, divergence, convergence=0.0)
    shift = round(0.5 * divergence / 100 * W)
    # The square moves right in the left view, left in the right view, by the same amount.
    assert white_columns(left).tolist() == list(range(SQUARE[0] + shift, SQUARE[1] + shift))
    assert white_columns(right).tolist() == list(range(SQUARE[0] - shift, SQUARE[1] - shift))
    # The background (nearness 0 = the convergence plane) does not move.
    assert torch.equal(left[..., :10], image[..., :10])
    assert torch.equal(right[..., -10:], image[..., -10:])


def test_convergence_plane_stays_put() -> None:
    image, nearness = scene()
    left, right = render_views(image, nearness, 6.0, convergence=1.0)
    # The square is on the screen; the background goes behind it (uncrossed).
    assert white_columns(left).tolist() == list(range(*SQUARE))
    assert white_columns(right).tolist() == list(range(*SQUARE))
    assert not torch.equal(left, image) and not torch.equal(right, image)


def test_zero_divergence_is_identity() -> None:
    image, nearness = scene()
    left, right = render_views(image, nearness, 0.0, 0.5)
    assert torch.equal(left, image) and torch.equal(right, image)


def test_nearer_pixels_win_and_holes_take_the_background() -> None:
    image, nearness = scene()
    shift = eye_shift(nearness, 10.0, 0.0, W)  # 10 px for the square
    left = forward_warp(image, nearness, shift, fill_from_left=True)
    # Where the square lands it covers the background entirely (z-order).
    assert (left[..., SQUARE[0] + 10 : SQUARE[1] + 10] == 1.0).all()
    # The strip it uncovered takes background colours, never the square's.
    uncovered = left[..., SQUARE[0] : SQUARE[0] + 10]
    assert (uncovered < 0.5).all()
    right = forward_warp(image, nearness, -shift, fill_from_left=False)
    assert (right[..., SQUARE[1] - 10 : SQUARE[1]] < 0.5).all()


def test_z_order_between_two_objects() -> None:
    """A nearer object sliding over a farther one hides it, whatever the source order."""
    image = torch.zeros(1, 3, 4, 60)
    nearness = torch.zeros(1, 1, 4, 60)
    image[..., 20:30] = 0.9  # near, moves 10 px right in the left view
    nearness[..., 20:30] = 1.0
    image[..., 30:40] = 0.5  # middle, moves 5 px right
    nearness[..., 30:40] = 0.5
    shift = nearness * 10
    left = forward_warp(image, nearness, shift, fill_from_left=True)
    row = left[0, 0, 0]
    assert (row[30:40] == 0.9).all()  # the near object
    assert (row[40:45] == 0.5).all()  # what stays visible of the middle one


def test_rows_and_batch_are_independent() -> None:
    image, nearness = scene()
    batch = torch.cat([image, image.flip(-1)])
    near = torch.cat([nearness, nearness.flip(-1)])
    left, _ = render_views(batch, near, 5.0, 0.0)
    single, _ = render_views(image, nearness, 5.0, 0.0)
    assert torch.equal(left[:1], single)


def test_everything_leaving_the_frame_keeps_the_source() -> None:
    image = torch.rand(1, 3, 2, 16)
    nearness = torch.ones(1, 1, 2, 16)
    out = forward_warp(image, nearness, torch.full((1, 1, 2, 16), 100.0), fill_from_left=True)
    assert torch.equal(out, image)
