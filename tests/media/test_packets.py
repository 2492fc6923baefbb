"""The packet index: ffprobe's packet lines, parsed; and a real source scanned."""

import subprocess
from fractions import Fraction
from pathlib import Path

import pytest

from stereo_infer.errors import BadInputError, ProbeError
from stereo_infer.packets import Packet, PacketIndex, parse_packet_line, read_packet_index
from stereo_infer.probe import probe


@pytest.mark.parametrize(
    ("line", "packet"),
    [
        ("0,-1024,512,4418,K_\n", Packet(0, -1024, True, 4418, 512)),
        ("2048,-512,512,1639,__", Packet(2048, -512, False, 1639, 512)),
        # No decode timestamp or duration (some demuxers), no size: still a frame.
        ("512,N/A,N/A,,__", Packet(512, None, False, 0)),
        # MPEG-TS lines end in an empty side-data column.
        ("132000,126000,3000,4473,K_,", Packet(132000, 126000, True, 4473, 3000)),
    ],
)
def test_packet_lines(line: str, packet: Packet) -> None:
    assert parse_packet_line(line) == packet


@pytest.mark.parametrize(
    "line",
    [
        # Outside the edit list: the decoder drops these too.
        "-7680,-8704,512,4451,KD",
        "-5632,-8192,512,897,_D",
        # Side data and other lines that are not packets.
        "side_data,H.26[45] User Data Unregistered SEI message",
        "Display Matrix,-90",
        "",
        "\n",
    ],
)
def test_lines_that_are_not_frames(line: str) -> None:
    assert parse_packet_line(line) is None


def test_packets_without_presentation_timestamps_are_bad_input() -> None:
    with pytest.raises(BadInputError, match=r"no presentation timestamps .* remux it"):
        parse_packet_line("N/A,N/A,N/A,4451,K_")


def test_frames_and_keyframes_come_in_presentation_order() -> None:
    index = PacketIndex(
        time_base=Fraction(1, 90000),
        packets=(
            Packet(6, 4, True, 10),
            Packet(4, 5, False, 1),
            Packet(5, 6, False, 1),
            Packet(9, 7, False, 1),
            Packet(0, 8, True, 10),  # a second keyframe that shows first (odd, but legal)
        ),
    )
    assert [p.pts for p in index.frames()] == [0, 4, 5, 6, 9]
    assert [p.pts for p in index.keyframes()] == [0, 6]


def test_read_the_index_of_a_real_source(src_mp4: Path) -> None:
    video = probe(src_mp4).video
    index = read_packet_index(str(src_mp4), video.index, video.time_base)
    assert index.time_base == video.time_base
    assert len(index.packets) == video.frame_count == 60
    assert index.packets[0].key
    # B-frames: decode order is not presentation order, and dts never passes pts.
    assert [p.pts for p in index.packets] != [p.pts for p in index.frames()]
    assert all(p.dts is not None and p.dts <= p.pts for p in index.packets)
    assert sum(p.size for p in index.packets) < src_mp4.stat().st_size


def test_a_raw_elementary_stream_is_bad_input(src_mp4: Path, tmp_path: Path) -> None:
    raw = tmp_path / "raw.h264"
    subprocess.run(
        [
            *("ffmpeg", "-loglevel", "error", "-i", str(src_mp4), "-map", "0:v", "-c", "copy"),
            *("-bsf:v", "h264_mp4toannexb", "-f", "h264", str(raw)),
        ],
        check=True,
    )
    with pytest.raises(BadInputError, match="raw elementary stream"):
        read_packet_index(str(raw), 0, Fraction(1, 1200000))


def test_garbage_is_a_probe_error(garbage: Path) -> None:
    with pytest.raises(BadInputError):
        read_packet_index(str(garbage), 0, Fraction(1, 90000))


def test_a_missing_stream_is_a_probe_error(audio_only: Path) -> None:
    with pytest.raises(ProbeError, match="no video packets"):
        read_packet_index(str(audio_only), 5, Fraction(1, 90000))
