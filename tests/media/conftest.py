"""Fixtures for the media pipeline tests: tiny videos generated with real ffmpeg."""

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from stereo_infer.assemble import AssembleResult, Container, assemble
from stereo_infer.engines import EngineJob, get_engine
from stereo_infer.engines.formats import StereoFormat
from stereo_infer.io import local_path
from stereo_infer.probe import probe
from stereo_infer.split import split_video
from stereo_infer.targets import LocalTargets
from stereo_types.plan import SplitPlan

SIZE = "160x90"
RATE = 30
SECONDS = 2

MakeVideo = Callable[..., Path]


def _ffmpeg(*args: str) -> None:
    subprocess.run(
        ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y", *args], check=True
    )


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    missing = [tool for tool in ("ffmpeg", "ffprobe") if shutil.which(tool) is None]
    if missing:
        # CI installs ffmpeg; a machine without it must not pass by skipping.
        pytest.fail(
            f"{' and '.join(missing)} not on PATH: install ffmpeg (apt-get install ffmpeg)",
            pytrace=False,
        )
    return tmp_path_factory.mktemp("media")


@pytest.fixture(scope="session")
def make_video(media_dir: Path) -> MakeVideo:
    """Write a testsrc2 video (+ sine audio) named ``name`` once per session."""

    def make(
        name: str,
        *,
        seconds: float = SECONDS,
        rate: int | str = RATE,
        audio: bool = True,
        audio_delay: float = 0.0,
        video_delay: float = 0.0,
        video_filter: str | None = None,
        extra: tuple[str, ...] = (),
    ) -> Path:
        path = media_dir / name
        if path.exists():
            return path
        args = ["-itsoffset", str(video_delay)] if video_delay else []
        args += ["-f", "lavfi", "-i", f"testsrc2=size={SIZE}:rate={rate}:duration={seconds}"]
        if audio:
            if audio_delay:
                args += ["-itsoffset", str(audio_delay)]
            args += [
                "-f",
                "lavfi",
                "-i",
                f"sine=frequency=440:sample_rate=48000:duration={seconds}",
            ]
        if video_filter:
            args += ["-vf", video_filter]
        # Keep the timestamps the filters (or -itsoffset) made; no cfr fixing.
        args += ["-fps_mode", "passthrough"]
        args += ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", *extra]
        if audio:
            args += ["-c:a", "aac"]
        _ffmpeg(*args, str(path))
        return path

    return make


@pytest.fixture(scope="session")
def src_mp4(make_video: MakeVideo) -> Path:
    # ultrafast has no B-frames; "-bf 2" keeps the reordering a real source has.
    return make_video("src.mp4", extra=("-bf", "2"))


@pytest.fixture(scope="session")
def src_mkv(make_video: MakeVideo) -> Path:
    return make_video("src.mkv", extra=("-bf", "2"))


@pytest.fixture(scope="session")
def audio_only(media_dir: Path) -> Path:
    path = media_dir / "tone.m4a"
    _ffmpeg("-f", "lavfi", "-i", "sine=duration=1", "-c:a", "aac", str(path))
    return path


@pytest.fixture(scope="session")
def garbage(media_dir: Path) -> Path:
    path = media_dir / "garbage.mp4"
    path.write_bytes(bytes(range(256)) * 64)
    return path


def frame_hashes(path: Path) -> list[str]:
    """MD5 of every decoded video frame, in order, without frame-rate conversion."""
    out = subprocess.run(
        [
            "ffmpeg",
            "-nostdin",
            "-loglevel",
            "error",
            "-i",
            str(path),
            "-map",
            "0:v:0",
            "-fps_mode",
            "passthrough",
            "-f",
            "framemd5",
            "-",
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return [line.rsplit(",", 1)[1].strip() for line in out.splitlines() if line[:1] != "#"]


def packet_pts(path: Path) -> list[int]:
    """Presentation timestamps of the video packets, sorted."""
    out = subprocess.run(
        [
            "ffprobe",
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-show_entries",
            "packet=pts",
            "-of",
            "csv=p=0",
            str(path),
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return sorted(int(line) for line in out.split())


@pytest.fixture
def hashes() -> Callable[[Path], list[str]]:
    return frame_hashes


@pytest.fixture
def pts() -> Callable[[Path], list[int]]:
    return packet_pts


def split_local(
    source: Path, folder: Path, segment_seconds: float, *, pre_roll: int = 0
) -> SplitPlan:
    """split_video with everything under ``folder`` (the CLI's --output-dir)."""
    return split_video(
        source,
        LocalTargets.under(str(folder)),
        segment_seconds,
        pre_roll=pre_roll,
        work_dir=folder / "work",
        show_progress=False,
    )


@pytest.fixture
def split() -> Callable[..., SplitPlan]:
    return split_local


def convert_segments(plan: SplitPlan, engine: str = "copy") -> list[Path]:
    """Run an engine over every segment, writing each plan's output_uri, as the Jobs do."""
    outputs = []
    for seg in plan.segments:
        src = local_path(seg.input_uri)
        out = local_path(seg.output_uri)
        out.parent.mkdir(parents=True, exist_ok=True)
        job = EngineJob(
            input_path=src,
            output_path=out,
            source=probe(src),
            stereo_format=StereoFormat.HALF_SBS,
            divergence=2.0,
            convergence=0.5,
            pre_roll_frames=seg.pre_roll_frames,
        )
        get_engine(engine).convert(job)
        outputs.append(out)
    return outputs


@pytest.fixture
def convert() -> Callable[..., list[Path]]:
    return convert_segments


Roundtrip = Callable[..., tuple[SplitPlan, AssembleResult]]


@pytest.fixture
def roundtrip(tmp_path: Path) -> Roundtrip:
    """split -> copy engine -> assemble, in tmp_path."""

    def run(
        source: Path,
        segment_seconds: float,
        *,
        pre_roll: int = 0,
        container: Container = Container.MP4,
    ) -> tuple[SplitPlan, AssembleResult]:
        work = tmp_path / f"rt-{segment_seconds}-{pre_roll}-{container}"
        plan = split_local(source, work / "segments", segment_seconds, pre_roll=pre_roll)
        outputs = convert_segments(plan)
        audio = local_path(plan.audio.uri) if plan.audio else None
        result = assemble(
            plan, outputs, work / f"result.{container}", audio=audio, show_progress=False
        )
        return plan, result

    return run
