"""A VideoJob asking for a depth model the image lacks fails in seconds, before any segment.

The Jobs here run the project's environment, so "the image" is that environment with
STEREO_DEPTH_WEIGHTS pointing at an empty folder: the split Job's `stereo-infer plan
--engine builtin --depth-model Any_V2_L` finds no weights and refuses before it reads the
source.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from tests.operator.harness import Harness, cpu_inference_template

pytest_plugins = ["tests.operator.harness"]
pytestmark = pytest.mark.cluster


def template(harness: Harness, weights: Path) -> dict[str, Any]:
    """The harness's pod template, with an empty weights folder: an image without weights."""
    env = {"STEREO_TEST_FAULTS": str(harness.faults), "STEREO_DEPTH_WEIGHTS": str(weights)}
    return cpu_inference_template(env)


def test_a_model_the_image_lacks_fails_before_any_segment(
    harness: Harness, media: dict[str, Path], tmp_path: Path
) -> None:
    weights = tmp_path / "weights"
    weights.mkdir()
    # One image for both kinds of Job (the chart's default): the split Job sees what the
    # inference Jobs would. The local nodes run the command whatever the image's name.
    image = "registry.example/stereo/inference:no-weights"
    pods = {**template(harness, weights), "image": image}
    harness.start_operator("--standalone", inference=pods, media=pods)
    started = time.monotonic()
    harness.create_videojob(
        "large",
        media["4s"],
        backend={"type": "job", "engine": "builtin"},
        stereo={"depthModel": "Any_V2_L"},
    )
    vj = harness.wait_phase("large", "Failed", "Running", "Succeeded", timeout=60)
    elapsed = time.monotonic() - started
    status = vj["status"]
    assert status["phase"] == "Failed", status
    [failed] = [c for c in status["conditions"] if c["type"] == "Failed"]
    assert failed["reason"] == "ModelUnavailable", status
    assert "'Any_V2_L'" in status["message"] and image in status["message"], status
    assert str(weights) in status["message"], status
    assert elapsed < 30, f"took {elapsed:.1f}s to fail"
    assert harness.segments("large") == []
