"""iw3's real code on the local cluster: a VideoJob with engine iw3, from apply to a stereo file.

The inference pods run `stereo-infer` from the project's environment, as every pod here does,
with the pinned nunif snapshot (scripts/setup) on PYTHONPATH and iw3's weight-free settings:
depth model NULL (the VideoJob's own setting) and stereo method forward_fill (the image's,
given as the pods' environment).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from stereo_infer.engines.iw3 import METHOD_ENV
from tests.engines.videos import packets, stream_info
from tests.nunif import require_nunif
from tests.operator.harness import Harness, cpu_inference_template, file_path, make_video

pytest_plugins = ["tests.operator.harness"]
pytestmark = pytest.mark.cluster


def iw3_template(nunif: Path, home: Path) -> dict[str, object]:
    """The harness's pod template, with what an iw3 image has: nunif and its home."""
    env = {"PYTHONPATH": str(nunif), "NUNIF_HOME": str(home), METHOD_ENV: "forward_fill"}
    return cpu_inference_template(env)


def test_a_videojob_with_the_iw3_engine(harness: Harness, tmp_path: Path) -> None:
    nunif = require_nunif()
    home = tmp_path / "nunif-home"
    home.mkdir()
    source = make_video(tmp_path / "film.mp4", 2, audio=False)  # two 1 s segments
    harness.start_operator("--standalone", inference=iw3_template(nunif, home))
    harness.create_videojob(
        "film",
        source,
        backend={"type": "job", "engine": "iw3"},
        stereo={"depthModel": "NULL"},
        format="full-sbs",
    )
    vj = harness.wait_phase("film", "Succeeded", "Failed", timeout=300)
    status = vj["status"]
    assert status["phase"] == "Succeeded", (status, harness.logs())
    assert status["segmentsTotal"] == 2
    assert all(s["status"]["attempts"] == 1 for s in harness.segments("film"))
    output = file_path(status["outputUri"])
    assert len(packets(output)) == len(packets(source)) == 48
    info = stream_info(output)
    assert (info["width"], info["height"]) == (320, 90)  # full-sbs of 160x90
