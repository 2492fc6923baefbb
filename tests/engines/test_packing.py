"""Packing left/right views into every output format: size and layout."""

from __future__ import annotations

import pytest
import torch

from stereo_infer.engines.formats import StereoFormat, output_size
from stereo_infer.engines.packing import pack

H, W = 30, 40


def views() -> tuple[torch.Tensor, torch.Tensor]:
    """Left: uniform dark red-ish grey; right: uniform light grey (easy to tell apart)."""
    left = torch.empty(1, 3, H, W)
    left[:, 0], left[:, 1], left[:, 2] = 0.8, 0.2, 0.2
    right = torch.full((1, 3, H, W), 0.6)
    return left, right


@pytest.mark.parametrize("fmt", list(StereoFormat))
@pytest.mark.parametrize("size", [(30, 40), (31, 41)])
def test_every_format_has_the_promised_size(fmt: StereoFormat, size: tuple[int, int]) -> None:
    h, w = size
    packed = pack(fmt, torch.rand(2, 3, h, w), torch.rand(2, 3, h, w))
    assert packed.shape[:2] == (2, 3)
    assert (packed.shape[3], packed.shape[2]) == output_size(fmt, w, h)


def test_side_by_side_layouts() -> None:
    left, right = views()
    full = pack(StereoFormat.FULL_SBS, left, right)
    assert torch.equal(full[..., :W], left) and torch.equal(full[..., W:], right)
    crossed = pack(StereoFormat.CROSS_EYED, left, right)
    assert torch.equal(crossed[..., :W], right) and torch.equal(crossed[..., W:], left)
    half = pack(StereoFormat.HALF_SBS, left, right)
    assert torch.allclose(half[..., : W // 2], left[..., : W // 2], atol=1e-5)
    assert torch.allclose(half[..., W // 2 :], right[..., : W // 2], atol=1e-5)


def test_half_sbs_squeezes_each_view_horizontally() -> None:
    ramp = torch.linspace(0, 1, W).view(1, 1, 1, W).expand(1, 3, H, W).contiguous()
    half = pack(StereoFormat.HALF_SBS, ramp, ramp)
    # Each half is the whole ramp at half width: it rises across each half.
    assert half[0, 0, 0, 0] < 0.1 and half[0, 0, 0, W // 2 - 1] > 0.9
    assert half[0, 0, 0, W // 2] < 0.1 and half[0, 0, 0, -1] > 0.9


def test_top_bottom_layouts() -> None:
    left, right = views()
    full = pack(StereoFormat.FULL_TB, left, right)
    assert torch.equal(full[..., :H, :], left) and torch.equal(full[..., H:, :], right)
    half = pack(StereoFormat.HALF_TB, left, right)
    assert torch.allclose(half[..., : H // 2, :], left[..., : H // 2, :], atol=1e-5)
    assert torch.allclose(half[..., H // 2 :, :], right[..., : H // 2, :], atol=1e-5)


def test_anaglyph_red_from_left_cyan_from_right() -> None:
    white, black = torch.ones(1, 3, H, W), torch.zeros(1, 3, H, W)
    left_only = pack(StereoFormat.ANAGLYPH, white, black)
    right_only = pack(StereoFormat.ANAGLYPH, black, white)
    # A white left view lights (almost only) red; a white right view green and blue.
    assert left_only[0, 0].mean() > 0.9
    assert left_only[0, 1:].max() < 0.05
    assert right_only[0, 0].max() < 0.05
    assert right_only[0, 1].mean() > 0.9 and right_only[0, 2].mean() > 0.9


def test_vr180_is_an_equirectangular_screen_side_by_side() -> None:
    left, right = views()
    vr = pack(StereoFormat.VR180, left, right)
    assert vr.shape[-2:] == (H, 2 * W)
    left_eye, right_eye = vr[..., :W], vr[..., W:]
    # Straight ahead shows the view; the edges of the 180 degree field are black.
    assert torch.allclose(left_eye[..., H // 2, W // 2], left[..., H // 2, W // 2], atol=0.05)
    assert torch.allclose(right_eye[..., H // 2, W // 2], right[..., H // 2, W // 2], atol=0.05)
    for eye in (left_eye, right_eye):
        assert eye[..., :, 0].abs().max() == 0 and eye[..., 0, :].abs().max() == 0


def test_vr180_screen_keeps_left_right_order() -> None:
    ramp = torch.linspace(0, 1, W).view(1, 1, 1, W).expand(1, 3, H, W).contiguous()
    eye = pack(StereoFormat.VR180, ramp, ramp)[..., :W]
    middle = eye[0, 0, H // 2]
    visible = middle[middle > 0]
    assert len(visible) > W // 4
    assert (visible[1:] >= visible[:-1] - 1e-4).all()  # not mirrored


def test_an_odd_half_gives_the_left_view_the_extra_column() -> None:
    # 855 wide: the left view gets 428 columns, the right 427.
    left, right = torch.zeros(1, 3, 4, 855), torch.ones(1, 3, 4, 855)
    half = pack(StereoFormat.HALF_SBS, left, right)
    assert half.shape[-1] == 855
    assert torch.allclose(half[..., :428], torch.zeros(1, 3, 4, 428), atol=1e-5)
    assert torch.allclose(half[..., 428:], torch.ones(1, 3, 4, 427), atol=1e-5)
