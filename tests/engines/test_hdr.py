"""HDR in 10 bits through the builtin engine: no banding, colour tags and HDR10 metadata kept."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest

from stereo_infer.encoding import VideoEncoding
from stereo_infer.engines.depth import PRIOR
from stereo_infer.engines.formats import StereoFormat
from stereo_infer.probe import ContentLight, MasteringDisplay, probe
from tests.engines.conversions import convert_file
from tests.engines.videos import FFMPEG
from tests.media.films import sei_payload_types

if TYPE_CHECKING:
    from stereo_infer.engines.builtin import BuiltinEngine

MASTERING = MasteringDisplay(
    red=(34000, 16000),
    green=(13250, 34500),
    blue=(7500, 3000),
    white_point=(15635, 16450),
    max_luminance=10_000_000,
    min_luminance=50,
)
LIGHT = ContentLight(max_content=1000, max_average=400)
PQ = ("-color_primaries", "bt2020", "-colorspace", "bt2020nc", "-color_trc", "smpte2084")
HLG = ("-color_primaries", "bt2020", "-colorspace", "bt2020nc", "-color_trc", "arib-std-b67")
# A smooth grey ramp over 200 of the 10-bit codes: 8 bits can hold only a quarter of them.
SBS = StereoFormat.FULL_SBS
RAMP = "format=yuv420p10le,geq=lum='400+X*200/1023':cb=512:cr=512"


def make_ramp(path: Path, colour: tuple[str, ...], *, hdr10: bool) -> Path:
    """Three frames of a 1024 x 16 ramp, 10-bit HEVC (lossless) with ``colour`` tags."""
    params = "log-level=error:lossless=1"
    if hdr10:
        params += f":hdr10=1:master-display={MASTERING.encoder_value}"
        params += f":max-cll={LIGHT.max_content},{LIGHT.max_average}"
    args = ["-f", "lavfi", "-i", "color=c=gray:s=1024x16:r=30:d=0.1", "-vf", RAMP]
    args += ["-c:v", "libx265", "-x265-params", params, *colour, str(path)]
    subprocess.run([*FFMPEG, *args], check=True)
    return path


def luma_levels(path: Path) -> int:
    """Distinct luma codes in the first frame."""
    out = subprocess.run(
        [*FFMPEG, "-i", str(path), "-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "gray16le", "-"],
        check=True,
        capture_output=True,
    ).stdout
    return len(np.unique(np.frombuffer(out, dtype="<u2")))


@pytest.fixture(scope="module")
def pq_ramp(engine_media: Path) -> Path:
    return make_ramp(engine_media / "ramp-pq.mp4", PQ, hdr10=True)


def test_a_ten_bit_ramp_keeps_four_times_the_levels_of_an_eight_bit_path(
    builtin_engine: BuiltinEngine, pq_ramp: Path, tmp_path: Path
) -> None:
    eight_bit = tmp_path / "ramp-8.mp4"
    to_eight_bit = ["-pix_fmt", "yuv420p", "-c:v", "libx264", "-qp", "0", *PQ]
    subprocess.run([*FFMPEG, "-i", str(pq_ramp), *to_eight_bit, str(eight_bit)], check=True)
    lossless = VideoEncoding(codec="hevc", crf=None, preset="ultrafast")
    deep = convert_file(
        builtin_engine, pq_ramp, tmp_path / "10.mp4", SBS, depth_model=PRIOR, encoding=lossless
    )
    shallow = convert_file(
        builtin_engine, eight_bit, tmp_path / "8.mp4", SBS, depth_model=PRIOR, encoding=lossless
    )
    video = probe(deep).video
    assert (video.pix_fmt, video.bit_depth) == ("yuv420p10le", 10)
    assert probe(shallow).video.pix_fmt == "yuv420p"
    assert luma_levels(pq_ramp) == 201
    assert luma_levels(deep) >= 4 * luma_levels(shallow)


@pytest.mark.parametrize("codec", ["hevc", "h264"])
def test_hdr10_colour_tags_and_metadata_are_carried(
    builtin_engine: BuiltinEngine, pq_ramp: Path, tmp_path: Path, codec: str
) -> None:
    source = probe(pq_ramp).video
    assert source.hdr_metadata is not None
    assert (source.hdr_metadata.mastering, source.hdr_metadata.light) == (MASTERING, LIGHT)
    encoding = VideoEncoding(codec=codec, crf=20, preset="ultrafast")
    out = convert_file(
        builtin_engine,
        pq_ramp,
        tmp_path / f"{codec}.mp4",
        SBS,
        depth_model=PRIOR,
        encoding=encoding,
    )
    video = probe(out).video
    assert video.pix_fmt == "yuv420p10le"
    colour = (video.color_primaries, video.color_space, video.color_transfer)
    assert colour == ("bt2020", "bt2020nc", "smpte2084")
    if codec == "hevc":
        assert video.hdr_metadata == source.hdr_metadata
    else:
        # ffmpeg 5.1 does not export these from H.264; the SEI is there (137, 144).
        assert {137, 144} <= sei_payload_types(out)


def test_hlg_stays_ten_bit_hlg(
    builtin_engine: BuiltinEngine, engine_media: Path, tmp_path: Path
) -> None:
    source = make_ramp(engine_media / "ramp-hlg.mp4", HLG, hdr10=False)
    encoding = VideoEncoding(codec="hevc", crf=20, preset="ultrafast")
    out = convert_file(
        builtin_engine, source, tmp_path / "hlg.mp4", SBS, depth_model=PRIOR, encoding=encoding
    )
    video = probe(out).video
    assert (video.pix_fmt, video.color_transfer, video.hdr) == ("yuv420p10le", "arib-std-b67", True)
    assert video.hdr_metadata is None
