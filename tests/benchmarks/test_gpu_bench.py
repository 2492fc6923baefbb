"""benchmarks/gpu/run --tiny: the GPU benchmark's whole path on the CPU, so it cannot rot
between the runs on a GPU machine. Its figures are not checked, only that each is there."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from tests.nunif import ROOT, require_nunif

RUN = ROOT / "benchmarks" / "gpu" / "run"
MODELS = {"Any_V2_S", "Any_V2_B", "Any_V2_L"}
FIELDS = {
    "engine", "depth_model", "size", "width", "height", "format", "frames", "device",
    "device_name", "encoder",
    "batch_size", "e2e_s", "e2e_fps", "depth_fps", "peak_gpu_mib", "gpu_busy_pct", "decode_s",
    "encode_s", "decode_share", "encode_share",
}  # fmt: skip


def test_tiny_run_reports_every_case(tmp_path: Path) -> None:
    out = tmp_path / "report.jsonl"
    env = os.environ | {"STEREO_NUNIF_DIR": str(require_nunif())}
    result = subprocess.run(
        [str(RUN), "--tiny", "--out", str(out)],
        capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    cases = [json.loads(line) for line in out.read_text().splitlines()]
    expected = {(e, m, f) for e, ms in (("builtin", MODELS), ("iw3", {"NULL"})) for m in ms
                for f in ("full-sbs", "half-sbs")}  # fmt: skip
    assert {(c["engine"], c["depth_model"], c["format"]) for c in cases} == expected
    for case in cases:
        assert set(case) == FIELDS
        assert (case["size"], case["width"], case["height"], case["frames"]) == ("tiny", 64, 36, 4)
        assert case["device"] == "cpu" and case["encoder"] == "software"
        assert case["e2e_fps"] > 0 and case["decode_s"] > 0 and case["encode_s"] > 0
        assert case["decode_share"] > 0 and case["encode_share"] > 0
        # No GPU in a tiny run: no figure rather than a made-up one.
        assert case["peak_gpu_mib"] is None and case["gpu_busy_pct"] is None
        assert (case["depth_fps"] is None) == (case["engine"] == "iw3")
    header = result.stdout.splitlines()[0].split()
    assert header[:4] == ["engine", "depth_model", "size", "format"]
