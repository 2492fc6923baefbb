"""Players learn the layout from the file: st3d (and VR180's sv3d) in mp4, StereoMode and
Projection in mkv, as ffprobe reads them back."""

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from stereo_infer.assemble import Container
from stereo_infer.engines.formats import StereoFormat
from stereo_infer.errors import MediaError
from stereo_infer.stereo_tags import stereo_boxes, tag_stereo
from tests.media.pipeline import MakeVideo, Roundtrip, frame_hashes, top_level_boxes

SIDE_BY_SIDE = {"side_data_type": "Stereo 3D", "type": "side by side", "inverted": 0}
TOP_BOTTOM = {"side_data_type": "Stereo 3D", "type": "top and bottom", "inverted": 0}
VR180_PROJECTION = {
    "side_data_type": "Spherical Mapping",
    "projection": "tiled equirectangular",
    "yaw": 0,
    "pitch": 0,
    "roll": 0,
}


def video_side_data(path: Path) -> list[dict[str, Any]]:
    out = subprocess.run(
        [
            *("ffprobe", "-v", "error", "-of", "json", "-select_streams", "v:0"),
            *("-show_entries", "stream_side_data_list", str(path)),
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    streams = json.loads(out)["streams"]
    return list(streams[0].get("side_data_list") or [])


@pytest.mark.parametrize(
    ("fmt", "st3d_mode", "spherical"),
    [
        (StereoFormat.FULL_SBS, 2, False),
        (StereoFormat.HALF_SBS, 2, False),
        (StereoFormat.FULL_TB, 1, False),
        (StereoFormat.HALF_TB, 1, False),
        (StereoFormat.VR180, 2, True),
        (StereoFormat.CROSS_EYED, None, False),
        (StereoFormat.ANAGLYPH, None, False),
    ],
)
def test_each_format_has_its_boxes(
    fmt: StereoFormat, st3d_mode: int | None, spherical: bool
) -> None:
    boxes = stereo_boxes(fmt)
    if st3d_mode is None:
        assert boxes == b""
        return
    # st3d: size 13, version and flags 0, then the mode.
    assert boxes[:13] == b"\0\0\0\x0dst3d\0\0\0\0" + bytes([st3d_mode])
    assert (b"sv3d" in boxes) is spherical


@pytest.mark.parametrize("container", [Container.MP4, Container.MKV])
def test_vr180_output_says_it_is_vr180(
    src_mp4: Path, roundtrip: Roundtrip, container: Container
) -> None:
    _, result = roundtrip(src_mp4, 0.7, container=container, stereo_format=StereoFormat.VR180)
    stereo, projection = video_side_data(result.output)
    assert stereo == SIDE_BY_SIDE
    assert {k: projection[k] for k in VR180_PROJECTION} == VR180_PROJECTION
    # Cropped to the front half: a quarter of the width gone on each side.
    width = 160
    assert projection["bound_top"] == projection["bound_bottom"] == 0
    assert abs(projection["bound_left"] - width / 2) <= 1
    assert abs(projection["bound_right"] - width / 2) <= 1
    # The tags change no picture.
    assert frame_hashes(result.output) == frame_hashes(src_mp4)


def test_top_bottom_and_flat_formats(src_mp4: Path, roundtrip: Roundtrip) -> None:
    _, tb = roundtrip(src_mp4, 1.0, stereo_format=StereoFormat.HALF_TB)
    assert video_side_data(tb.output) == [TOP_BOTTOM]
    assert top_level_boxes(tb.output)[:2] == ["ftyp", "moov"], "still fast-start"
    _, flat = roundtrip(src_mp4, 1.0, stereo_format=StereoFormat.ANAGLYPH)
    assert video_side_data(flat.output) == []


def test_tagging_needs_the_moov_last(make_video: MakeVideo, tmp_path: Path) -> None:
    faststart = make_video("faststart.mp4", audio=False, extra=("-movflags", "+faststart"))
    copy = tmp_path / "faststart.mp4"
    copy.write_bytes(faststart.read_bytes())
    with pytest.raises(MediaError, match="moov is not the last box"):
        tag_stereo(copy, StereoFormat.FULL_SBS)
    assert copy.read_bytes() == faststart.read_bytes()
