"""The media pipeline as the Jobs run it, for the tests: plan, convert each window, assemble;
and single-pass references to compare with (frame hashes, packet timestamps)."""

import functools
import re
import struct
import subprocess
from collections.abc import Callable
from pathlib import Path

from stereo_infer.assemble import AssembleResult
from stereo_infer.conversion import ConversionRequest, ConversionResult, convert
from stereo_infer.encoding import VideoEncoding
from stereo_infer.engines import EngineOptions, get_engine
from stereo_infer.engines.formats import StereoFormat
from stereo_infer.io import local_path
from stereo_infer.planner import plan_source
from stereo_infer.targets import LocalTargets
from stereo_types.plan import PlannedSegment, SplitPlan

MakeVideo = Callable[..., Path]
Hashes = Callable[..., list[str]]
Pts = Callable[[Path], list[int]]
Plan = Callable[..., SplitPlan]
ConvertAll = Callable[..., list[Path]]
Roundtrip = Callable[..., tuple[SplitPlan, AssembleResult]]


def frame_hashes(path: Path, *, rate: str | None = None, pix_fmt: str | None = None) -> list[str]:
    """MD5 of every decoded video frame, in order: one single pass over ``path``.

    Without ``rate`` no frame-rate conversion at all; with it (a variable-rate source), the
    ``fps`` filter puts the frames on that constant grid, as a one-pass conversion would.
    ``pix_fmt`` hashes the pictures converted to that format (the decoder's own otherwise).
    """
    stat = path.stat()
    return list(_frame_hashes(str(path), stat.st_mtime_ns, stat.st_size, rate, pix_fmt))


@functools.lru_cache(maxsize=256)
def _frame_hashes(
    path: str, _mtime_ns: int, _size: int, rate: str | None, pix_fmt: str | None
) -> tuple[str, ...]:
    """frame_hashes, once per version of a file (sources are hashed by many tests)."""
    args = ["ffmpeg", "-nostdin", "-loglevel", "error", "-i", path, "-map", "0:v:0"]
    if rate is not None:
        args += ["-vf", f"fps={rate}"]
    args += ["-fps_mode", "passthrough"]
    if pix_fmt is not None:
        args += ["-pix_fmt", pix_fmt]
    out = subprocess.run(
        [*args, "-f", "framemd5", "-"], check=True, capture_output=True, text=True
    ).stdout
    # stream, dts, pts, duration, size, hash[, side data...]: the frame's own hash.
    return tuple(line.split(",")[5].strip() for line in out.splitlines() if line[:1] != "#")


def single_pass_hashes(source: Path, plan: SplitPlan, *, pix_fmt: str | None = None) -> list[str]:
    """What one pass over the source makes: its frames, on the plan's grid if it normalised."""
    rate = f"{plan.fps_num}/{plan.fps_den}" if plan.normalised_variable_rate else None
    return frame_hashes(source, rate=rate, pix_fmt=pix_fmt)


def packets(path: Path) -> list[tuple[int, bool]]:
    """(pts, keyframe) of every video packet, in decode order."""
    out = subprocess.run(
        [
            *("ffprobe", "-v", "error", "-select_streams", "v:0"),
            *("-show_entries", "packet=pts,flags", "-of", "csv=p=0", str(path)),
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    rows = [line.split(",") for line in out.split()]
    return [(int(pts), "K" in flags) for pts, flags, *_ in rows]


def packet_pts(path: Path) -> list[int]:
    """Presentation timestamps of the video packets, sorted."""
    return sorted(pts for pts, _ in packets(path))


def leading_frames(path: Path) -> int:
    """Packets that follow a keyframe (other than the first) in decode order but show before
    it: an open GOP's leading pictures."""
    count, key_pts = 0, None
    for index, (pts, key) in enumerate(packets(path)):
        if key:
            key_pts = pts if index > 0 else None
        elif key_pts is not None and pts < key_pts:
            count += 1
    return count


def reordered(path: Path) -> bool:
    """Whether decode order differs from presentation order (B-frames)."""
    stamps = [pts for pts, _ in packets(path)]
    return stamps != sorted(stamps)


def plan_local(
    source: Path, folder: Path, segment_seconds: float, *, pre_roll: int = 0
) -> SplitPlan:
    """plan_source with everything under ``folder`` (the CLI's --output-dir)."""
    return plan_source(
        str(source), LocalTargets.under(str(folder)), segment_seconds, pre_roll=pre_roll
    )


def convert_segment(seg: PlannedSegment, engine: str = "copy") -> ConversionResult:
    """What one inference Job does: convert the segment's window, read from the source."""
    request = ConversionRequest(
        seg.input_uri,
        seg.output_uri,
        StereoFormat.HALF_SBS,
        2.0,
        0.5,
        VideoEncoding(),
        window=seg.window,
    )
    engine_ = get_engine(engine, EngineOptions(device="cpu"))
    return convert(engine_, request, device="cpu", show_progress=False)


def convert_segments(plan: SplitPlan, engine: str = "copy") -> list[Path]:
    """Run an engine over every segment, writing each plan's output_uri, as the Jobs do."""
    outputs = []
    for seg in plan.segments:
        result = convert_segment(seg, engine)
        assert result.frames == seg.frame_count
        outputs.append(local_path(seg.output_uri))
    return outputs


def payload_hashes(path: Path, stream: str | int = "a:0") -> list[str]:
    """MD5 of each packet's payload in one stream. Side data is left out: Matroska drops
    mp4's AAC priming side data, so whole-packet hashes would differ for the same audio."""
    args = ["ffprobe", "-v", "error", "-select_streams", str(stream), "-show_data_hash", "md5"]
    out = subprocess.run(
        [*args, "-show_entries", "packet=data_hash", "-of", "csv=p=0", str(path)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return re.findall(r"MD5:[0-9a-f]+", out)


def top_level_boxes(path: Path) -> list[str]:
    """The names of an MP4 file's top-level boxes, in order (moov before mdat: faststart)."""
    names = []
    with path.open("rb") as f:
        while header := f.read(8):
            size, name = struct.unpack(">I4s", header)
            if size == 1:  # a 64-bit size follows
                (size,) = struct.unpack(">Q", f.read(8))
                f.seek(size - 16, 1)
            else:
                f.seek(size - 8, 1)
            names.append(name.decode())
    return names
