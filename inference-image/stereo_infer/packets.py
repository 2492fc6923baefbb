"""The packet index of a video stream: timestamps, keyframe flags and sizes, no picture decoded.

ffprobe demuxes the stream and prints one short line per packet. That reads the file once
(MP4 and Matroska answer from their index for the timestamps but ffprobe still walks every
packet; MPEG-TS has no index at all), which is the cost a plan may have: no decode, no write.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from fractions import Fraction

from stereo_infer.errors import BadInputError, ProbeError, ToolMissingError
from stereo_infer.ffmpeg import FFPROBE, classify_failure


@dataclass(frozen=True, slots=True)
class Packet:
    pts: int
    dts: int | None
    key: bool
    size: int
    # How long the frame shows, in ticks; None where the container does not say.
    duration: int | None = None


@dataclass(frozen=True)
class PacketIndex:
    """A stream's packets in decode order (those the demuxer marks discarded left out)."""

    time_base: Fraction
    packets: tuple[Packet, ...]

    def frames(self) -> list[Packet]:
        """Packets in presentation order: one decoded frame each."""
        return sorted(self.packets, key=lambda p: p.pts)

    def keyframes(self) -> list[Packet]:
        """Keyframes in presentation order."""
        return sorted((p for p in self.packets if p.key), key=lambda p: p.pts)


def read_packet_index(url: str, stream: int | str, time_base: Fraction) -> PacketIndex:
    """Scan the packets of ``stream`` (an index or a specifier such as ``v:0``) of ``url``
    (a path or http URL)."""
    return PacketIndex(time_base=time_base, packets=scan_packets(url, stream))


def scan_packets(url: str, stream: int | str) -> tuple[Packet, ...]:
    """The packets of ``stream`` in decode order (see ``read_packet_index``)."""
    cmd = [FFPROBE, "-v", "error", "-select_streams", str(stream)]
    # csv in ffprobe's own field order: pts,dts,duration,size,flags (cheap to split).
    cmd += ["-show_entries", "packet=pts,dts,duration,size,flags", "-of", "csv=p=0", url]
    try:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    except FileNotFoundError as exc:
        raise ToolMissingError(f"{FFPROBE} is not installed") from exc
    assert proc.stdout is not None
    packets = [p for line in proc.stdout if (p := parse_packet_line(line)) is not None]
    _, stderr = proc.communicate()
    if proc.returncode != 0:
        raise classify_failure(FFPROBE, proc.returncode, stderr)
    if not packets:
        raise ProbeError(f"no video packets with timestamps in {url}")
    return tuple(packets)


def parse_packet_line(line: str) -> Packet | None:
    """One ``pts,dts,duration,size,flags`` line; None for a discarded packet or a line that
    is not a packet (blank lines, side data)."""
    fields = line.strip().split(",")
    if len(fields) < 5 or not _is_timestamp(fields[0]):
        return None
    pts, dts, duration, size, flags = fields[:5]
    if "D" in flags:
        return None  # outside the edit list: the decoder drops it too
    if pts == "N/A":
        raise BadInputError(
            "the source's video packets carry no presentation timestamps (a raw elementary"
            " stream?); remux it into mp4 or mkv first"
        )
    return Packet(
        pts=int(pts),
        dts=_optional_int(dts),
        key="K" in flags,
        size=int(size or 0),
        duration=_optional_int(duration),
    )


def _is_timestamp(text: str) -> bool:
    return text == "N/A" or text.lstrip("-").isdigit()


def _optional_int(text: str | None) -> int | None:
    return None if text in (None, "", "N/A") else int(text)
