"""Fixtures for the engine tests: tiny videos and one CPU builtin engine per session."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from stereo_infer.engines import EngineOptions

if TYPE_CHECKING:
    from stereo_infer.engines.builtin import BuiltinEngine
from tests.engines.videos import make_testsrc, scene_frame, write_frames


@pytest.fixture(scope="session")
def engine_media(tmp_path_factory: pytest.TempPathFactory) -> Path:
    missing = [tool for tool in ("ffmpeg", "ffprobe") if shutil.which(tool) is None]
    if missing:
        pytest.fail(f"{' and '.join(missing)} not on PATH: install ffmpeg", pytrace=False)
    return tmp_path_factory.mktemp("engine-media")


@pytest.fixture(scope="session")
def tiny_clip(engine_media: Path) -> Path:
    """160x90, 12 frames at 30 fps, with B-frames."""
    return make_testsrc(engine_media / "tiny.mp4")


@pytest.fixture(scope="session")
def scene_clip(engine_media: Path) -> Path:
    """320x180, 4 frames: a bright 60 px square over a dark striped background."""
    frames = [scene_frame(320, 180, 60, seed=i) for i in range(4)]
    return write_frames(engine_media / "scene.mp4", frames)


@pytest.fixture(scope="session")
def builtin_engine() -> Iterator[BuiltinEngine]:
    from stereo_infer.engines.builtin import BuiltinEngine

    yield BuiltinEngine(EngineOptions(device="cpu"))
