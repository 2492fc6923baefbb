import pytest

from stereo_infer.engines import get_engine
from stereo_infer.engines.formats import (
    FrameSize,
    Layout,
    StereoFormat,
    geometry,
    output_size,
    parse_format,
)
from stereo_infer.errors import BadInputError, UnknownEngineError, UnknownFormatError


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("full-sbs", (3840, 1080)),
        ("half-sbs", (1920, 1080)),
        ("full-tb", (1920, 2160)),
        ("half-tb", (1920, 1080)),
        ("anaglyph", (1920, 1080)),
        ("cross-eyed", (3840, 1080)),
        ("vr180", (3840, 1080)),
    ],
)
def test_output_size(name: str, expected: tuple[int, int]) -> None:
    assert output_size(parse_format(name), 1920, 1080) == FrameSize(*expected)


def test_every_format_has_a_geometry() -> None:
    for fmt in StereoFormat:
        assert output_size(fmt, 160, 90).width in (160, 320)


def test_cross_eyed_swaps_views() -> None:
    assert geometry(StereoFormat.CROSS_EYED).swap_views
    assert geometry(StereoFormat.CROSS_EYED).layout is Layout.SIDE_BY_SIDE
    assert not geometry(StereoFormat.FULL_SBS).swap_views


def test_unknown_format() -> None:
    with pytest.raises(UnknownFormatError, match="choose one of: full-sbs"):
        parse_format("3d-glasses")


def test_engine_registry() -> None:
    assert get_engine("copy").name == "copy"
    with pytest.raises(UnknownEngineError, match="not available in this image"):
        get_engine("iw3")
    with pytest.raises(UnknownEngineError, match="unknown engine 'magic'; available: copy"):
        get_engine("magic")
    assert issubclass(UnknownEngineError, BadInputError)
