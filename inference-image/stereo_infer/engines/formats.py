"""Stereo output formats and the output frame size each one gives (pure functions)."""

from dataclasses import dataclass
from enum import StrEnum
from typing import NamedTuple

from stereo_infer.errors import UnknownFormatError
from stereo_types.formats import OutputFormat

# The VideoJob's format enum is the single list of formats; engines name it for what it is here.
StereoFormat = OutputFormat


class Layout(StrEnum):
    SIDE_BY_SIDE = "side-by-side"
    TOP_BOTTOM = "top-bottom"
    ANAGLYPH = "anaglyph"


class FrameSize(NamedTuple):
    width: int
    height: int


@dataclass(frozen=True)
class FormatGeometry:
    layout: Layout
    # Each view squeezed to half the packing axis, so the frame keeps its size.
    half: bool = False
    # Right view first (cross-eyed viewing).
    swap_views: bool = False


GEOMETRY: dict[StereoFormat, FormatGeometry] = {
    StereoFormat.FULL_SBS: FormatGeometry(Layout.SIDE_BY_SIDE),
    StereoFormat.HALF_SBS: FormatGeometry(Layout.SIDE_BY_SIDE, half=True),
    StereoFormat.FULL_TB: FormatGeometry(Layout.TOP_BOTTOM),
    StereoFormat.HALF_TB: FormatGeometry(Layout.TOP_BOTTOM, half=True),
    StereoFormat.ANAGLYPH: FormatGeometry(Layout.ANAGLYPH),
    StereoFormat.CROSS_EYED: FormatGeometry(Layout.SIDE_BY_SIDE, swap_views=True),
    # Side by side per eye; the projection metadata is the engine's business.
    StereoFormat.VR180: FormatGeometry(Layout.SIDE_BY_SIDE),
}


def parse_format(name: str) -> StereoFormat:
    try:
        return StereoFormat(name)
    except ValueError:
        known = ", ".join(f.value for f in StereoFormat)
        raise UnknownFormatError(
            f"unknown output format {name!r}; choose one of: {known}"
        ) from None


def geometry(fmt: StereoFormat) -> FormatGeometry:
    return GEOMETRY[fmt]


def output_size(fmt: StereoFormat, width: int, height: int) -> FrameSize:
    """Frame size of the stereo output for an input of ``width`` x ``height``.

    A half format keeps the input's size; when that is odd, the left (or top) view gets
    the extra pixel: 855 wide gives views of 428 and 427.
    """
    geo = GEOMETRY[fmt]
    if geo.half or geo.layout is Layout.ANAGLYPH:
        return FrameSize(width, height)
    if geo.layout is Layout.SIDE_BY_SIDE:
        return FrameSize(2 * width, height)
    return FrameSize(width, 2 * height)


def encoded_size(size: FrameSize) -> FrameSize:
    """The size an output frame is encoded at: rounded up to even, since the 4:2:0 players
    decode halves both. The added column or row is black, at the right or bottom edge."""
    return FrameSize(size.width + size.width % 2, size.height + size.height % 2)
