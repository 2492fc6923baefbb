"""Packing a left and right view into one output frame, for every StereoFormat.

Views are ``(N, 3, H, W)`` float RGB in 0..1; the packed frame has the size
``formats.output_size`` gives.

* full-sbs / full-tb: the views side by side (left first) / on top of each other (left on top).
* half-sbs / half-tb: each view squeezed to half the packing axis (antialiased
  bilinear), so the frame keeps the input size; an odd size gives the left /
  top view the extra pixel.
* cross-eyed: full side by side with the views swapped (right first).
* anaglyph: red-cyan, Dubois' least-squares matrices (applied to the gamma-coded
  values, as is common practice), clipped to 0..1: red comes almost only from
  the left view, green and blue almost only from the right one.
* vr180: full side by side, each eye an equirectangular image covering 180 x 180
  degrees (the eye's width spans 180 degrees of azimuth, its height 180 degrees
  of elevation), showing the frame as a flat virtual screen straight ahead that
  spans ``VR180_SCREEN_FOV`` degrees horizontally at the frame's aspect ratio,
  black around it. The assemble step writes the VR180 metadata players read
  (``stereo_infer.stereo_tags``).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from stereo_infer.engines.formats import Layout, StereoFormat, geometry, output_size

# Rows: output R, G, B; columns: input R, G, B.
DUBOIS_LEFT = (
    (0.456, 0.500, 0.176),
    (-0.040, -0.038, -0.016),
    (-0.015, -0.021, -0.005),
)
DUBOIS_RIGHT = (
    (-0.043, -0.088, -0.002),
    (0.378, 0.734, -0.018),
    (-0.072, -0.113, 1.226),
)
VR180_SCREEN_FOV = 90.0


def pack(fmt: StereoFormat, left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
    """One ``(N, 3, H', W')`` frame per view pair, laid out as ``fmt`` says."""
    height, width = left.shape[-2:]
    geo = geometry(fmt)
    if fmt is StereoFormat.VR180:
        left, right = equirect_screen(left), equirect_screen(right)
    if geo.swap_views:
        left, right = right, left
    if geo.layout is Layout.ANAGLYPH:
        packed = anaglyph(left, right)
    elif geo.layout is Layout.SIDE_BY_SIDE:
        if geo.half:
            left = _resize(left, height, width - width // 2)
            right = _resize(right, height, width // 2)
        packed = torch.cat([left, right], dim=3)
    else:
        if geo.half:
            left = _resize(left, height - height // 2, width)
            right = _resize(right, height // 2, width)
        packed = torch.cat([left, right], dim=2)
    expected = output_size(fmt, width, height)
    assert (packed.shape[-1], packed.shape[-2]) == expected, (packed.shape, expected)
    return packed


def anaglyph(left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
    ml = torch.tensor(DUBOIS_LEFT, device=left.device, dtype=left.dtype)
    mr = torch.tensor(DUBOIS_RIGHT, device=left.device, dtype=left.dtype)
    mixed = torch.einsum("oc,nchw->nohw", ml, left) + torch.einsum("oc,nchw->nohw", mr, right)
    return mixed.clamp(0.0, 1.0)


def equirect_screen(view: torch.Tensor, fov_degrees: float = VR180_SCREEN_FOV) -> torch.Tensor:
    """``view`` as a flat screen ahead, rendered into a 180 x 180 degree equirectangular eye."""
    n, _, height, width = view.shape
    device, dtype = view.device, view.dtype
    # Pixel centres: azimuth and elevation from -90 to +90 degrees.
    azimuth = _angles(width, device, dtype)
    elevation = _angles(height, device, dtype)
    el, az = torch.meshgrid(elevation, azimuth, indexing="ij")
    # The ray (cos el sin az, sin el, cos el cos az) meets the plane z = 1 at
    # x = tan az, y = tan el / cos az.
    half_w = math.tan(math.radians(fov_degrees) / 2)
    half_h = half_w * height / width
    plane_x = torch.tan(az)
    plane_y = torch.tan(el) / torch.cos(az)
    # grid_sample's -1..1 spans the source frame; outside is black.
    grid = torch.stack([plane_x / half_w, plane_y / half_h], dim=-1)
    grid = grid.unsqueeze(0).expand(n, height, width, 2)
    return F.grid_sample(view, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def _angles(count: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """Pixel-centre angles from -90 to +90 degrees, in radians."""
    steps = torch.arange(count, device=device, dtype=dtype) + 0.5
    return steps / count * math.pi - math.pi / 2


def _resize(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    if x.shape[-2:] == (height, width):
        return x
    return F.interpolate(
        x, size=(height, width), mode="bilinear", antialias=True, align_corners=False
    )
