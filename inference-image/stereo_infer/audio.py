"""Keeping the source's audio aside, untouched, for the final mux."""

from pathlib import Path

from stereo_infer.errors import BadInputError, MediaError
from stereo_infer.ffmpeg import run_ffmpeg
from stereo_infer.probe import MediaInfo

# Audio codecs the mp4 muxer takes as they are.
MP4_AUDIO_CODECS = frozenset({"aac", "mp3", "ac3", "eac3", "alac", "opus", "flac"})


def extract_audio(info: MediaInfo, dest_dir: Path) -> Path | None:
    """Copy the first audio stream of ``info`` into a file in ``dest_dir``; None without audio.

    Stream copy keeps the audio bit-exact. An mp4 source keeps its audio in an
    mp4 (.m4a) container, because its edit list trims encoder padding that
    Matroska cannot express (AAC would come back about 20 ms long).
    """
    if info.audio is None:
        return None
    attempts: list[tuple[str, list[str]]] = []
    if "mp4" in info.container.split(",") and info.audio.codec in MP4_AUDIO_CODECS:
        attempts.append(("audio.m4a", ["-c:a", "copy", "-f", "mp4"]))
    attempts.append(("audio.mka", ["-c:a", "copy", "-f", "matroska"]))
    # Last resort for codecs Matroska cannot carry: lossless re-encode.
    attempts.append(("audio.mka", ["-c:a", "flac", "-f", "matroska"]))
    failure: Exception | None = None
    for name, codec_args in attempts:
        target = dest_dir / name
        try:
            run_ffmpeg(["-i", info.path, "-map", f"0:{info.audio.index}", *codec_args, str(target)])
            return target
        except (MediaError, BadInputError) as exc:
            failure = exc
            target.unlink(missing_ok=True)
    raise MediaError(f"cannot extract the audio of {info.path}: {failure}")
