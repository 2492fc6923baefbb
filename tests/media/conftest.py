"""Fixtures for the media pipeline tests: tiny videos generated with real ffmpeg."""

import shutil
import subprocess
from pathlib import Path

import pytest

from stereo_infer.assemble import AssembleResult, Container, assemble
from stereo_infer.engines.formats import StereoFormat
from stereo_types.plan import SplitPlan
from tests.media.pipeline import (
    ConvertAll,
    Hashes,
    MakeVideo,
    Plan,
    Pts,
    Roundtrip,
    convert_segments,
    frame_hashes,
    packet_pts,
    plan_local,
)

SIZE = "160x90"
RATE = 30
SECONDS = 2


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
    """Write a testsrc2 video (+ sine audio) named ``name`` once per session.

    The container follows the name's extension (mp4, mkv, ts, ...).
    """

    def make(
        name: str,
        *,
        seconds: float = SECONDS,
        rate: int | str = RATE,
        size: str = SIZE,
        audio: bool = True,
        audio_delay: float = 0.0,
        video_delay: float = 0.0,
        video_filter: str | None = None,
        codec: str = "libx264",
        pix_fmt: str = "yuv420p",
        extra: tuple[str, ...] = (),
    ) -> Path:
        path = media_dir / name
        if path.exists():
            return path
        args = ["-itsoffset", str(video_delay)] if video_delay else []
        args += ["-f", "lavfi", "-i", f"testsrc2=size={size}:rate={rate}:duration={seconds}"]
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
        args += ["-c:v", codec, "-preset", "ultrafast", "-pix_fmt", pix_fmt, *extra]
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


@pytest.fixture
def hashes() -> Hashes:
    return frame_hashes


@pytest.fixture
def pts() -> Pts:
    return packet_pts


@pytest.fixture
def plan() -> Plan:
    return plan_local


@pytest.fixture
def convert_all() -> ConvertAll:
    return convert_segments


@pytest.fixture
def roundtrip(tmp_path: Path) -> Roundtrip:
    """plan -> copy engine over every window -> assemble, in tmp_path."""

    def run(
        source: Path,
        segment_seconds: float,
        *,
        pre_roll: int = 0,
        container: Container = Container.MP4,
        stereo_format: StereoFormat | None = None,
    ) -> tuple[SplitPlan, AssembleResult]:
        work = tmp_path / f"rt-{segment_seconds}-{pre_roll}-{container}-{stereo_format}"
        plan = plan_local(source, work / "segments", segment_seconds, pre_roll=pre_roll)
        outputs = convert_segments(plan)
        result = assemble(
            plan,
            outputs,
            work / f"result.{container}",
            source=source,
            stereo_format=stereo_format,
            show_progress=False,
        )
        return plan, result

    return run
