"""Which of the source's tracks go into the final output, and how.

The converted video replaces the source's; every other track comes from the source itself by
stream copy, with its language, title and dispositions, and the chapters and global metadata
come with them. A track the output container cannot hold is converted where that loses
nothing a viewer would miss, and refused otherwise. The planner applies the same rules, so a
refusal comes before any GPU time is spent.

=====================  ===========================  ==============================
track                  mp4                          mkv
=====================  ===========================  ==============================
audio                  copied: aac, mp3, mp2, ac3,  copied, any codec
                       eac3, dts, opus, flac, alac;
                       PCM, TrueHD, MLP, WavPack,
                       TTA -> ALAC (lossless);
                       other codecs -> AAC
text subtitles         -> mov_text (styling lost)   copied (mov_text -> SubRip)
DVD subtitles          copied                       copied
PGS, DVB subtitles     refused: use mkv             copied
cover art              copied                       left out (*)
attachments (fonts)    left out                     copied
data, other video      left out                     left out
=====================  ===========================  ==============================

(*) ffmpeg 5.1 writes a cover picture into Matroska as a second video track, not as an
attachment, which players take for the film.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

from stereo_infer.errors import BadInputError
from stereo_infer.probe import MediaInfo, StreamSummary
from stereo_types.formats import Container

_log = logging.getLogger(__name__)


MP4_AUDIO = frozenset({"aac", "mp3", "mp2", "ac3", "eac3", "dts", "opus", "flac", "alac"})
# Lossless codecs mp4 cannot carry: ALAC holds them without loss.
_LOSSLESS_AUDIO = frozenset({"truehd", "mlp", "wavpack", "tta"})
_AAC_BITRATE_PER_CHANNEL = 96_000
TEXT_SUBTITLES = frozenset({"subrip", "srt", "ass", "ssa", "webvtt", "mov_text", "text"})
BITMAP_SUBTITLES = frozenset({"hdmv_pgs_subtitle", "dvd_subtitle", "dvb_subtitle"})
_MP4_BITMAP_SUBTITLES = frozenset({"dvd_subtitle"})
# Text codecs Matroska takes as they are.
_MKV_TEXT_SUBTITLES = frozenset({"subrip", "srt", "ass", "ssa", "webvtt"})


@dataclass(frozen=True)
class OutputTrack:
    """One source stream in the output: ``-map`` it, with ``codec`` (``copy`` or an encoder)."""

    source_index: int
    kind: str
    codec: str
    bitrate: int | None = None
    cover_art: bool = False
    title: str | None = None


def output_tracks(info: MediaInfo, container: Container) -> list[OutputTrack]:
    """Every source stream the output keeps, in source order, with how it gets there;
    BadInputError naming the first track ``container`` cannot hold."""
    tracks = []
    for stream in info.streams:
        if stream.index == info.video.index:
            continue
        track = _output_track(stream, container)
        if track is None:
            _log.warning("%s is left out: %s cannot hold it", describe(stream), container.value)
            continue
        if track.codec != "copy":
            _log.warning("%s is converted to %s for %s", describe(stream), track.codec, container)
        tracks.append(replace(track, title=stream.title))
    return tracks


def describe(stream: StreamSummary) -> str:
    """A track as a person finds it: 'subtitle track 3 (hdmv_pgs_subtitle, fre, "Forced")'."""
    details = [stream.codec or "unknown codec"]
    details += [value for value in (stream.language,) if value]
    details += [f'"{stream.title}"'] if stream.title else []
    return f"{stream.type} track {stream.index} ({', '.join(details)})"


def _output_track(stream: StreamSummary, container: Container) -> OutputTrack | None:
    codec = stream.codec or ""
    if stream.type == "audio":
        return _audio_track(stream, codec, container)
    if stream.type == "subtitle":
        return _subtitle_track(stream, codec, container)
    if stream.type == "video" and stream.attached_pic and container is Container.MP4:
        return OutputTrack(stream.index, "video", "copy", cover_art=True)
    if stream.type == "attachment" and container is Container.MKV:
        return OutputTrack(stream.index, "attachment", "copy")
    return None


def _audio_track(stream: StreamSummary, codec: str, container: Container) -> OutputTrack:
    if container is Container.MKV or codec in MP4_AUDIO:
        return OutputTrack(stream.index, "audio", "copy")
    if codec in _LOSSLESS_AUDIO or codec.startswith("pcm_"):
        return OutputTrack(stream.index, "audio", "alac")
    bitrate = _AAC_BITRATE_PER_CHANNEL * (stream.channels or 2)
    return OutputTrack(stream.index, "audio", "aac", bitrate)


def _subtitle_track(stream: StreamSummary, codec: str, container: Container) -> OutputTrack:
    if container is Container.MP4:
        if codec == "mov_text" or codec in _MP4_BITMAP_SUBTITLES:
            return OutputTrack(stream.index, "subtitle", "copy")
        if codec in TEXT_SUBTITLES:
            return OutputTrack(stream.index, "subtitle", "mov_text")
    else:
        if codec in _MKV_TEXT_SUBTITLES or codec in BITMAP_SUBTITLES:
            return OutputTrack(stream.index, "subtitle", "copy")
        if codec in TEXT_SUBTITLES:
            return OutputTrack(stream.index, "subtitle", "srt")
    hint = "; an mkv output holds it" if codec in BITMAP_SUBTITLES else ""
    raise BadInputError(
        f"{describe(stream)} cannot go into an {container.value} output and cannot be"
        f" converted{hint}"
    )
