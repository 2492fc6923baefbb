"""Telling players the output is stereo: the ``st3d`` and ``sv3d`` boxes of Google's
Spherical Video V2 spec, written into an mp4's video sample entry.

ffmpeg 5.1 can write these boxes (and Matroska's StereoMode and Projection elements) only
from side data it read from an input; its command line cannot set them. So the joined video
(an mp4 whose ``moov`` comes last) gets the boxes here, and the final remux by stream copy
carries them, as side data, into mp4 or mkv.

* Side by side (full or half) and VR180: ``st3d`` left-right; top-bottom: ``st3d``
  top-bottom. Cross-eyed (right view first) and anaglyph are made to be watched as flat
  video and get none.
* VR180 also gets ``sv3d``: an equirectangular projection cropped to the front half
  (180 x 180 degrees per eye), which headsets and video sites read as VR180.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import BinaryIO

from stereo_infer.engines.formats import Layout, StereoFormat, geometry
from stereo_infer.errors import MediaError

# st3d stereo_mode values.
_TOP_BOTTOM = 1
_LEFT_RIGHT = 2
# equi projection bounds are 0.32 fixed point: a quarter of the 360-degree width is cut
# off on each side, leaving 180 degrees.
_QUARTER = 1 << 30
_CONTAINERS = frozenset({b"moov", b"trak", b"mdia", b"minf", b"stbl"})
_VISUAL_ENTRIES = frozenset({b"avc1", b"avc3", b"hvc1", b"hev1"})
# A VisualSampleEntry's fixed fields before its child boxes.
_VISUAL_ENTRY_FIELDS = 78
_HEADER = struct.Struct(">I4s")


def stereo_boxes(fmt: StereoFormat) -> bytes:
    """The boxes a video sample entry of ``fmt`` carries (empty: none)."""
    geo = geometry(fmt)
    if geo.swap_views or geo.layout is Layout.ANAGLYPH:
        return b""
    mode = _LEFT_RIGHT if geo.layout is Layout.SIDE_BY_SIDE else _TOP_BOTTOM
    boxes = _full_box(b"st3d", bytes([mode]))
    if fmt is StereoFormat.VR180:
        header = _full_box(b"svhd", b"stereo-operator\0")
        pose = _full_box(b"prhd", struct.pack(">iii", 0, 0, 0))
        bounds = _full_box(b"equi", struct.pack(">IIII", 0, 0, _QUARTER, _QUARTER))
        boxes += _box(b"sv3d", header + _box(b"proj", pose + bounds))
    return boxes


def tag_stereo(path: Path, fmt: StereoFormat) -> None:
    """Add ``fmt``'s boxes to every video sample entry of the mp4 at ``path``, in place.

    The ``moov`` box must be the file's last, so that no chunk offset moves.
    """
    extra = stereo_boxes(fmt)
    if not extra:
        return
    with path.open("r+b") as file:
        start, size = _last_top_level_box(file, path)
        file.seek(start)
        moov = file.read(size)
        file.seek(start)
        file.write(_with_boxes(moov, extra))
        file.truncate()


def _last_top_level_box(file: BinaryIO, path: Path) -> tuple[int, int]:
    """Where the ``moov`` box starts and its size; MediaError unless it comes last."""
    end = file.seek(0, 2)
    offset = 0
    while offset < end:
        file.seek(offset)
        size, kind = _HEADER.unpack(file.read(_HEADER.size))
        if size == 1:
            size = struct.unpack(">Q", file.read(8))[0]
        elif size == 0:
            size = end - offset
        if kind == b"moov":
            if offset + size != end:
                raise MediaError(f"{path}: moov is not the last box; cannot tag it in place")
            return offset, size
        offset += size
    raise MediaError(f"{path}: no moov box")


def _with_boxes(box: bytes, extra: bytes) -> bytes:
    """``box`` rebuilt with ``extra`` appended to each video sample entry inside it."""
    size, kind = _HEADER.unpack_from(box)
    if size != len(box):
        raise MediaError(f"unsupported {kind!r} box of {size} bytes in {len(box)}")
    body = box[_HEADER.size :]
    if kind in _CONTAINERS:
        body = b"".join(_with_boxes(child, extra) for child in _children(body))
    elif kind == b"stsd":
        # Version, flags and entry count, then the sample entries.
        body = body[:8] + b"".join(_with_boxes(entry, extra) for entry in _children(body[8:]))
    elif kind in _VISUAL_ENTRIES:
        fields, children = body[:_VISUAL_ENTRY_FIELDS], _children(body[_VISUAL_ENTRY_FIELDS:])
        kept = [c for c in children if c[4:8] not in (b"st3d", b"sv3d")]
        body = fields + b"".join(kept) + extra
    return _box(kind, body)


def _children(body: bytes) -> list[bytes]:
    children = []
    offset = 0
    while offset + _HEADER.size <= len(body):
        size = _HEADER.unpack_from(body, offset)[0]
        if size < _HEADER.size or offset + size > len(body):
            raise MediaError(f"malformed box at {offset} (size {size})")
        children.append(body[offset : offset + size])
        offset += size
    return children


def _box(kind: bytes, body: bytes) -> bytes:
    return _HEADER.pack(_HEADER.size + len(body), kind) + body


def _full_box(kind: bytes, body: bytes) -> bytes:
    # Version 0, no flags.
    return _box(kind, b"\0\0\0\0" + body)
