"""What the image can run (``stereo-infer capabilities``) and the plan's refusal of the rest.

Real files throughout: a weights folder holding a random-init Depth Anything in the
published layout, and the ``stereo-infer`` command itself.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from stereo_infer import exitcodes
from stereo_infer.capabilities import check_request
from stereo_infer.cli import main
from stereo_infer.errors import ModelUnavailableError, UnknownEngineError
from stereo_types.refusals import MODEL_UNAVAILABLE, find_refusal
from tests.engines.weights import save_tiny_depth_anything

STEREO_INFER = [sys.executable, "-m", "stereo_infer"]


@pytest.fixture
def weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An image with Any_V2_S's weights and no others, and no iw3 weights."""
    root = save_tiny_depth_anything(tmp_path / "weights", "Any_V2_S")
    monkeypatch.setenv("STEREO_DEPTH_WEIGHTS", str(root))
    monkeypatch.delenv("NUNIF_HOME", raising=False)
    return root


def test_capabilities_report_what_is_on_disk(
    weights: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["capabilities"]) == exitcodes.OK
    engines = json.loads(capsys.readouterr().out)["engines"]
    assert list(engines) == ["copy", "builtin", "iw3"]
    assert engines["copy"] == {"available": True, "problem": None, "depthModels": None}
    builtin = engines["builtin"]
    assert builtin["available"] and builtin["problem"] is None
    models = builtin["depthModels"]
    assert list(models) == ["Prior", "Any_V2_S", "Any_V2_B", "Any_V2_L"]
    assert models["Prior"]["available"] and models["Any_V2_S"]["available"]
    large = models["Any_V2_L"]
    assert not large["available"]
    assert "'Any_V2_L'" in large["problem"] and str(weights / "Any_V2_L") in large["problem"]
    # No NUNIF_HOME: iw3 cannot run here, installed or not.
    assert not engines["iw3"]["available"] and "iw3" in engines["iw3"]["problem"]
    assert engines["iw3"]["depthModels"] is None


def test_the_check_refuses_what_the_image_lacks(weights: Path) -> None:
    check_request("builtin", "Any_V2_S")
    check_request("builtin", "Prior")
    check_request("copy", "Any_V2_L")  # the copy engine takes no model
    with pytest.raises(ModelUnavailableError, match=r"'Any_V2_L'.*weights") as info:
        check_request("builtin", "Any_V2_L")
    assert info.value.exit_code == exitcodes.MODEL_UNAVAILABLE == 69
    with pytest.raises(ModelUnavailableError, match="no depth model 'ZoeD_N'"):
        check_request("builtin", "ZoeD_N")
    with pytest.raises(ModelUnavailableError, match="iw3"):
        check_request("iw3", "Any_V2_S")
    with pytest.raises(UnknownEngineError, match="unknown engine 'magic'") as unknown:
        check_request("magic", None)
    assert unknown.value.exit_code == exitcodes.BAD_INPUT


def _plan(tmp_path: Path, source: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    args = ["--no-progress", "plan", "--input", str(source), "--segment-seconds", "0.2"]
    out = ["--output-dir", str(tmp_path / "out")]
    return subprocess.run(
        [*STEREO_INFER, *args, *out, *extra],
        capture_output=True,
        text=True,
        env=dict(os.environ),
        timeout=120,
        check=False,
    )


def test_plan_refuses_a_missing_model_before_reading_the_source(
    weights: Path, tmp_path: Path, tiny_clip: Path
) -> None:
    # The source does not exist: a refusal before reading it is the only way to exit 69.
    missing = tmp_path / "not-there.mp4"
    refused = _plan(tmp_path, missing, "--engine", "builtin", "--depth-model", "Any_V2_L")
    assert refused.returncode == exitcodes.MODEL_UNAVAILABLE, refused.stderr
    refusal = find_refusal(refused.stderr)
    assert refusal is not None, refused.stderr
    assert refusal.reason == MODEL_UNAVAILABLE
    assert "'Any_V2_L'" in refusal.message and str(weights) in refusal.message
    assert not (tmp_path / "out").exists()

    # What the image has plans as before.
    planned = _plan(tmp_path, tiny_clip, "--engine", "builtin", "--depth-model", "Any_V2_S")
    assert planned.returncode == exitcodes.OK, planned.stderr
    assert (tmp_path / "out" / "plan.json").is_file()


def test_plan_refuses_an_engine_the_image_lacks(weights: Path, tmp_path: Path) -> None:
    refused = _plan(tmp_path, tmp_path / "not-there.mp4", "--engine", "iw3")
    assert refused.returncode == exitcodes.MODEL_UNAVAILABLE, refused.stderr
    refusal = find_refusal(refused.stderr)
    assert refusal is not None and "engine 'iw3'" in refusal.message, refused.stderr
    # A model without an engine says nothing about what will run it.
    alone = _plan(tmp_path, tmp_path / "not-there.mp4", "--depth-model", "Any_V2_S")
    assert alone.returncode == exitcodes.BAD_INPUT
    assert "--depth-model goes with --engine" in alone.stderr
