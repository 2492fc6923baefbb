"""Build both container images with scripts/images and check its smoke tests.

A cold build takes about two and a half minutes (debootstrap, both images) and needs root
for Docker and debootstrap; later runs reuse the cached base image and layers.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.timeout(3600)


@pytest.fixture(scope="module")
def build() -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(ROOT / "scripts" / "images")], capture_output=True, text=True, timeout=3600
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    return result


def test_both_images_are_built(build: subprocess.CompletedProcess[str]) -> None:
    assert "built local/stereo-operator:dev" in build.stderr
    assert "built local/stereo-inference:dev" in build.stderr
    assert "smoke tests passed" in build.stderr


def test_operator_image_runs_both_commands(build: subprocess.CompletedProcess[str]) -> None:
    assert "usage: stereo-operator" in build.stdout
    assert "usage: stereo-watcher" in build.stdout
    assert "operator image: imports ok, maxInflight default 16" in build.stdout


def test_inference_image_runs_stereo_infer(build: subprocess.CompletedProcess[str]) -> None:
    assert "usage: stereo-infer" in build.stdout
    # `stereo-infer probe` printed the JSON description of the converted clip, last.
    start = [m.start() for m in re.finditer(r"^\{$", build.stdout, re.MULTILINE)][-1]
    info = json.loads(build.stdout[start:])
    assert info["video"]["width"] == 320
    assert info["video"]["height"] == 240
    assert info["video"]["frame_count"] == 24
