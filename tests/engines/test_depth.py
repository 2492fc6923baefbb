"""Depth estimators: the weight-free prior, weight lookup and the neural wrapper."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from stereo_infer.engines.depth import (
    PRIOR,
    WEIGHTS_ENV,
    DepthModelUnavailableError,
    PriorDepth,
    StreamState,
    check_depth_model,
    default_depth_model,
    load_depth_model,
    locate_weights,
)
from stereo_infer.errors import BadInputError
from tests.engines.weights import save_tiny_depth_anything


def square_scene(h: int = 90, w: int = 160) -> torch.Tensor:
    x = torch.full((1, 3, h, w), 0.15)
    x[..., ::6] = 0.25
    x[..., 30:60, 60:100] = 1.0
    return x


def test_prior_sees_the_bright_square_as_near() -> None:
    nearness = PriorDepth().estimate(square_scene())
    assert nearness.shape == (1, 1, 90, 160)
    assert float(nearness.min()) >= 0.0 and float(nearness.max()) <= 1.0
    square = nearness[..., 40:50, 75:85].mean()
    background = torch.cat([nearness[..., :, :40].flatten(), nearness[..., :, 120:].flatten()])
    assert square > background.max()


def test_prior_is_deterministic_per_frame_and_batch_independent() -> None:
    frames = torch.rand(3, 3, 45, 80)
    prior = PriorDepth()
    batch = prior.estimate(frames, StreamState())
    again = torch.cat([prior.estimate(frames[i : i + 1]) for i in range(3)])
    assert torch.allclose(batch, again)
    assert not prior.temporal


def test_prior_lower_rows_are_nearer_on_a_flat_frame() -> None:
    nearness = PriorDepth().estimate(torch.full((1, 3, 180, 320), 0.5))
    column = nearness[0, 0, :, 160]
    assert (column[1:] >= column[:-1]).all() and column[-1] > column[0]


def test_unknown_model_is_refused() -> None:
    with pytest.raises(DepthModelUnavailableError, match=r"no depth model 'ZoeD_N'.*Prior"):
        check_depth_model("ZoeD_N")
    assert issubclass(DepthModelUnavailableError, BadInputError)


def test_missing_weights_name_the_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(WEIGHTS_ENV, str(tmp_path / "weights"))
    with pytest.raises(DepthModelUnavailableError, match=str(tmp_path / "weights" / "Any_V2_S")):
        check_depth_model("Any_V2_S")
    monkeypatch.delenv(WEIGHTS_ENV)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    expected = tmp_path / "hub" / "models--depth-anything--Depth-Anything-V2-Small-hf"
    with pytest.raises(DepthModelUnavailableError, match="never downloads") as info:
        check_depth_model("Any_V2_S")
    assert str(expected) in str(info.value)
    # Without weights the default falls back to the weight-free prior.
    assert default_depth_model() == PRIOR


def test_weights_are_found_in_the_hf_cache_layout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(WEIGHTS_ENV, raising=False)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    repo = tmp_path / "models--depth-anything--Depth-Anything-V2-Small-hf"
    snapshot = repo / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text("{}")
    (snapshot / "model.safetensors").write_bytes(b"")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("abc123\n")
    assert locate_weights("Any_V2_S") == snapshot


def test_weights_dir_may_hold_one_folder_per_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "Any_V2_B"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    (folder / "pytorch_model.bin").write_bytes(b"")
    monkeypatch.setenv(WEIGHTS_ENV, str(tmp_path))
    assert locate_weights("Any_V2_B") == folder


def test_depth_anything_wrapper_with_tiny_random_weights(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The neural path end to end on a randomly initialised, tiny Depth Anything."""
    save_tiny_depth_anything(tmp_path)
    assert json.loads((tmp_path / "Any_V2_S" / "config.json").read_text())
    assert (tmp_path / "Any_V2_S" / "model.safetensors").is_file()
    monkeypatch.setenv(WEIGHTS_ENV, str(tmp_path))

    estimator = load_depth_model("Any_V2_S", torch.device("cpu"))
    assert estimator.temporal
    state = StreamState()
    nearness = estimator.estimate(torch.rand(2, 3, 36, 64), state)
    assert nearness.shape == (2, 1, 36, 64)
    assert float(nearness.min()) >= 0.0 and float(nearness.max()) <= 1.0
    assert state.range is not None  # carried to the next batch


def test_the_default_pre_roll_is_what_depth_anything_needs() -> None:
    from stereo_infer.engines.depth import DEPTH_ANYTHING_REPOS, DepthAnythingDepth
    from stereo_types.formats import TEMPORAL_DEPTH_MODELS

    assert set(DEPTH_ANYTHING_REPOS) == TEMPORAL_DEPTH_MODELS
    warm_up, ema = DepthAnythingDepth.warm_up_frames, DepthAnythingDepth.ema
    # The moving range forgets its start to 1 % in the warm-up, not a frame sooner.
    assert ema**warm_up <= 0.01 < ema ** (warm_up - 1)
