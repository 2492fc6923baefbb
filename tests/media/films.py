"""A Blu-ray rip in miniature, made with real ffmpeg: several audio tracks, text and bitmap
subtitles, chapters, global metadata and a font attachment."""

import json
import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SECONDS = 2
CHAPTERS = (("Opening", 0, 800), ("Middle", 800, 1500), ("End", 1500, 2000))  # ms
FILM_TITLE = "A Test Film"


@dataclass(frozen=True)
class Track:
    """One track of the film besides its video, as ffprobe should report it."""

    kind: str
    codec: str
    language: str
    title: str
    default: bool = False
    forced: bool = False


AUDIO = (
    Track("audio", "aac", "eng", "Stereo", default=True),
    Track("audio", "ac3", "fre", "Surround 5.1"),
)
TEXT_SUBTITLES = (
    Track("subtitle", "subrip", "eng", "English", default=True),
    Track("subtitle", "ass", "fre", "Forced narrative", forced=True),
)
PGS = Track("subtitle", "hdmv_pgs_subtitle", "ger", "Deutsch (PGS)")

H264 = ("-c:v", "libx264", "-preset", "ultrafast", "-bf", "2", "-pix_fmt", "yuv420p")
# HDR10: 10-bit HEVC, BT.2020 primaries, PQ, with mastering display and light levels.
MASTER_DISPLAY = "G(13250,34500)B(7500,3000)R(34000,16000)WP(15635,16450)L(10000000,50)"
HDR10_HEVC = (
    *("-c:v", "libx265", "-preset", "ultrafast", "-pix_fmt", "yuv420p10le", "-x265-params"),
    f"log-level=error:hdr10=1:master-display={MASTER_DISPLAY}:max-cll=1000,400",
    *("-color_primaries", "bt2020", "-colorspace", "bt2020nc", "-color_trc", "smpte2084"),
)


def make_film(
    folder: Path,
    name: str,
    *,
    pgs: bool = True,
    size: str = "160x90",
    video: tuple[str, ...] = H264,
) -> Path:
    """An mkv holding every track above (the PGS one if ``pgs``), the chapters, a title tag
    and a font attachment, its video encoded with ``video``; made once per ``folder`` and
    ``name``."""
    path = folder / name
    if path.exists():
        return path
    inputs = [
        *("-f", "lavfi", "-i", f"testsrc2=size={size}:rate=30:duration={SECONDS}"),
        *("-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={SECONDS}"),
        *("-f", "lavfi", "-i", f"sine=frequency=330:sample_rate=48000:duration={SECONDS}"),
        *("-i", str(_srt(folder)), "-i", str(_ass(folder))),
    ]
    if pgs:
        inputs += ["-f", "sup", "-i", str(_sup(folder))]
    inputs += ["-f", "ffmetadata", "-i", str(_chapters(folder))]
    meta = 6 if pgs else 5  # the ffmetadata input
    tracks = [*AUDIO, *TEXT_SUBTITLES, *((PGS,) if pgs else ())]
    args = ["-map", "0:v", *(arg for i in range(1, len(tracks) + 1) for arg in ("-map", f"{i}"))]
    args += ["-map_metadata", str(meta), "-map_chapters", str(meta)]
    args += list(video)
    args += ["-c:a:0", "aac", "-c:a:1", "ac3", "-ac:a:1", "6", "-c:s", "copy"]
    for position, track in enumerate(tracks, start=1):
        args += [f"-metadata:s:{position}", f"language={track.language}"]
        args += [f"-metadata:s:{position}", f"title={track.title}"]
        flags = [flag for flag, on in (("default", track.default), ("forced", track.forced)) if on]
        args += [f"-disposition:{position}", "+".join(flags) or "0"]
    font = folder / "font.ttf"
    font.write_bytes(b"\0\1\0\0" + bytes(60))
    args += ["-attach", str(font), "-metadata:s:t", "mimetype=font/ttf"]
    _ffmpeg(*inputs, *args, str(path))
    return path


def streams(path: Path) -> list[dict[str, Any]]:
    return _probe(path, "-show_streams")["streams"]


def chapters(path: Path) -> list[tuple[str, float, float]]:
    return [
        (c["tags"]["title"], float(c["start_time"]), float(c["end_time"]))
        for c in _probe(path, "-show_chapters")["chapters"]
    ]


def format_tags(path: Path) -> dict[str, str]:
    tags = _probe(path, "-show_format")["format"].get("tags") or {}
    return {key.lower(): value for key, value in tags.items()}


def described(stream: dict[str, Any]) -> tuple[str, str, str | None, str | None, bool, bool]:
    """A stream as ``Track`` would describe it (the codec as ffprobe names it)."""
    tags = {key.lower(): value for key, value in (stream.get("tags") or {}).items()}
    disposition = stream.get("disposition") or {}
    return (
        stream["codec_type"],
        stream.get("codec_name", ""),
        tags.get("language"),
        tags.get("title"),
        disposition.get("default") == 1,
        disposition.get("forced") == 1,
    )


def expected(track: Track, codec: str | None = None) -> tuple[str, str, str, str, bool, bool]:
    return (
        track.kind,
        codec or track.codec,
        track.language,
        track.title,
        track.default,
        track.forced,
    )


def sei_payload_types(path: Path) -> set[int]:
    """SEI payload types in the first H.264 access unit, read by ffmpeg's header tracer."""
    done = subprocess.run(
        [
            *("ffmpeg", "-nostdin", "-loglevel", "debug", "-i", str(path), "-frames:v", "1"),
            *("-c", "copy", "-bsf:v", "trace_headers", "-f", "null", "-"),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    return {
        int(line.rsplit("=", 1)[1])
        for line in done.stderr.splitlines()
        if "last_payload_type_byte" in line
    }


def _probe(path: Path, what: str) -> dict[str, Any]:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-of", "json", what, str(path)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return json.loads(out)


def _ffmpeg(*args: str) -> None:
    subprocess.run(
        ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y", *args], check=True
    )


def _srt(folder: Path) -> Path:
    path = folder / "film.srt"
    path.write_text(
        "1\n00:00:00,100 --> 00:00:00,900\nHello.\n\n2\n00:00:01,000 --> 00:00:01,800\nBye.\n",
        encoding="utf-8",
    )
    return path


def _ass(folder: Path) -> Path:
    path = folder / "film.ass"
    path.write_text(
        "[Script Info]\nScriptType: v4.00+\nPlayResX: 160\nPlayResY: 90\n\n"
        "[V4+ Styles]\nFormat: Name, Fontname, Fontsize, PrimaryColour, Bold, Italic, "
        "Alignment, MarginL, MarginR, MarginV\nStyle: Default,Arial,12,&H00FFFFFF,0,0,2,5,5,5\n\n"
        "[Events]\nFormat: Layer, Start, End, Style, Text\n"
        "Dialogue: 0,0:00:00.20,0:00:01.50,Default,Bonjour.\n",
        encoding="utf-8",
    )
    return path


def _chapters(folder: Path) -> Path:
    path = folder / "film.ffmeta"
    lines = [";FFMETADATA1", f"title={FILM_TITLE}"]
    for title, start, end in CHAPTERS:
        lines += ["[CHAPTER]", "TIMEBASE=1/1000", f"START={start}", f"END={end}", f"title={title}"]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _sup(folder: Path) -> Path:
    """A PGS (Blu-ray) subtitle stream: one 64x16 caption shown at 0.3 s, cleared at 1.2 s."""
    path = folder / "film.sup"
    width, height = 160, 90
    show, clear = 27_000, 108_000  # 90 kHz ticks
    obj_w, obj_h = 64, 16
    # Each line: one run of 64 pixels of palette entry 1, then end of line.
    line = bytes([0x00, 0xC0 | (obj_w >> 8), obj_w & 0xFF, 0x01, 0x00, 0x00])
    rle = line * obj_h
    window = struct.pack(">BBHHHH", 1, 0, 48, 60, obj_w, obj_h)
    composition = struct.pack(">HHBHBBBB", width, height, 0x10, 0, 0x80, 0, 0, 1)
    placed = struct.pack(">HBBHH", 0, 0, 0, 48, 60)
    palette = struct.pack(">BB", 0, 0) + bytes([0, 16, 128, 128, 0, 1, 235, 128, 128, 255])
    bitmap = struct.pack(">HBB", 0, 0, 0xC0) + (len(rle) + 4).to_bytes(3, "big")
    bitmap += struct.pack(">HH", obj_w, obj_h) + rle
    shown = ((0x16, composition + placed), (0x17, window), (0x14, palette), (0x15, bitmap))
    empty = struct.pack(">HHBHBBBB", width, height, 0x10, 1, 0x00, 0, 0, 0)
    cleared = ((0x16, empty), (0x17, window))
    data = b"".join(_pgs_segment(show, kind, payload) for kind, payload in (*shown, (0x80, b"")))
    data += b"".join(
        _pgs_segment(clear, kind, payload) for kind, payload in (*cleared, (0x80, b""))
    )
    path.write_bytes(data)
    return path


def _pgs_segment(pts: int, kind: int, payload: bytes) -> bytes:
    return b"PG" + struct.pack(">IIBH", pts, 0, kind, len(payload)) + payload
