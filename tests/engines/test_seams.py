"""Seams no one can see: a film converted as segments matches one single pass at and around
each seam, given the pre-roll its depth model asks for, and visibly does not without it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pytest

from stereo_infer.encoding import VideoEncoding
from stereo_infer.engines import EngineJob, EngineOptions
from stereo_infer.engines.builtin import BuiltinEngine
from stereo_infer.engines.depth import WEIGHTS_ENV, DepthAnythingDepth
from stereo_infer.engines.formats import StereoFormat
from stereo_infer.probe import probe
from stereo_infer.window import SegmentInput
from stereo_types.seams import DepthTrace, SeamScore, seam_score
from tests.engines.videos import read_frames, scene_frame, write_frames
from tests.engines.weights import save_tiny_depth_anything
from tests.media.pipeline import plan_local

FRAMES, SEAM = 48, 32
RATE = 24
MIN_PSNR_DB = 40.0


class Converted(NamedTuple):
    frames: np.ndarray
    trace: DepthTrace


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255**2 / mse)


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BuiltinEngine]:
    weights = save_tiny_depth_anything(tmp_path_factory.mktemp("weights"))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(WEIGHTS_ENV, str(weights))
        yield BuiltinEngine(EngineOptions(device="cpu"))


@pytest.fixture(scope="module")
def fading_scene(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A textured scene brightening ever faster, from 20 % to full: the depth model's range
    drifts most around the seam."""
    frames = [
        (scene_frame(96, 54, 20, seed=i) * (0.2 + 0.8 * (i / (FRAMES - 1)) ** 3)).astype(np.uint8)
        for i in range(FRAMES)
    ]
    return write_frames(tmp_path_factory.mktemp("seams") / "fade.mp4", frames, rate=RATE)


def converted(engine: BuiltinEngine, source: SegmentInput, out: Path) -> Converted:
    trace = engine.convert(
        EngineJob(
            input=source,
            output_path=out,
            stereo_format=StereoFormat.FULL_SBS,
            divergence=4.0,
            convergence=0.5,
            # Lossless: the only differences left are the depth model's.
            encoding=VideoEncoding(crf=None),
            depth_model="Any_V2_S",
        )
    )
    return Converted(read_frames(out), trace)


@pytest.fixture(scope="module")
def single_pass(
    engine: BuiltinEngine, fading_scene: Path, tmp_path_factory: pytest.TempPathFactory
) -> Converted:
    video = probe(fading_scene).video
    out = tmp_path_factory.mktemp("single") / "single.mp4"
    return converted(engine, SegmentInput(str(fading_scene), video), out)


def as_segments(
    engine: BuiltinEngine, source: Path, tmp_path: Path, pre_roll: int
) -> tuple[np.ndarray, SeamScore | None]:
    """The source converted as segments of SEAM frames: the frames joined, the seam score."""
    video = probe(source).video
    plan = plan_local(source, tmp_path / "segments", SEAM / RATE, pre_roll=pre_roll)
    assert [seg.start_frame for seg in plan.segments] == [0, SEAM]
    parts = [
        converted(engine, SegmentInput(str(source), video, seg.window), tmp_path / f"{i}.mp4")
        for i, seg in enumerate(plan.segments)
    ]
    assert [len(p.trace.means) for p in parts] == [len(p.frames) for p in parts]
    return np.concatenate([p.frames for p in parts]), seam_score([p.trace for p in parts])


def natural_score(single: Converted) -> float:
    """The score one pass gets at the seam's frame: how far the content itself moves there."""
    means = single.trace.means
    score = seam_score([DepthTrace(means=means[:SEAM]), DepthTrace(means=means[SEAM:])])
    assert score is not None
    return score.score


def seam_psnr(joined: np.ndarray, single: np.ndarray) -> list[float]:
    """PSNR against the single pass of the frames at and after the seam."""
    assert joined.shape == single.shape
    # Before the seam the two runs are the same computation.
    assert all(psnr(joined[i], single[i]) == float("inf") for i in range(SEAM))
    return [psnr(joined[i], single[i]) for i in range(SEAM, SEAM + 4)]


def test_with_the_models_pre_roll_the_seam_matches_a_single_pass(
    engine: BuiltinEngine, fading_scene: Path, single_pass: Converted, tmp_path: Path
) -> None:
    # The default pre-roll of a VideoJob with the builtin engine and Depth Anything.
    warm_up = DepthAnythingDepth.warm_up_frames
    # The pre-roll starts after frame 0: the second segment's state is its own.
    assert 0 < warm_up < SEAM
    joined, score = as_segments(engine, fading_scene, tmp_path, warm_up)
    figures = seam_psnr(joined, single_pass.frames)
    assert min(figures) >= MIN_PSNR_DB, figures
    # The depth moves across the seam as it does there in one pass.
    assert score is not None
    assert score.score == pytest.approx(natural_score(single_pass), rel=0.05), score


def test_without_pre_roll_the_seam_shows(
    engine: BuiltinEngine, fading_scene: Path, single_pass: Converted, tmp_path: Path
) -> None:
    joined, score = as_segments(engine, fading_scene, tmp_path, 0)
    figures = seam_psnr(joined, single_pass.frames)
    assert figures[0] < MIN_PSNR_DB, figures
    assert score is not None and score.score > 3 * natural_score(single_pass), score
