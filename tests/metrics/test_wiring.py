"""`stereo-infer convert` and the HTTP server report each conversion through the adapter,
and a broken adapter never fails a conversion (real ffmpeg, the copy engine)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from stereo_infer import exitcodes
from stereo_infer.cli import main
from stereo_infer.engines import EngineOptions
from stereo_infer.invocation import build_request
from stereo_infer.server import InferenceService, ServerConfig
from tests.engines.videos import make_testsrc

FRAMES = 12


def figures(path: Path) -> dict[str, tuple[dict[str, str], float]]:
    found = {}
    for family in text_string_to_metric_families(path.read_text()):
        for sample in family.samples:
            if "le" not in sample.labels:
                found[sample.name] = (sample.labels, sample.value)
    return found


@pytest.fixture
def source(tmp_path: Path) -> Path:
    return make_testsrc(tmp_path / "in.mp4", frames=FRAMES)


def convert(source: Path, output: Path) -> int:
    args = ["--no-progress", "convert", "--input", str(source), "--output", str(output)]
    return main([*args, "--format", "half-sbs", "--engine", "copy", "--device", "cpu"])


def test_convert_reports_its_figures(
    source: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    textfile = tmp_path / "metrics.prom"
    monkeypatch.setenv("STEREO_METRICS_TEXTFILE", str(textfile))
    assert convert(source, tmp_path / "out.mp4") == exitcodes.OK
    got = figures(textfile)
    labels, frames = got["stereo_infer_conversion_frames_total"]
    assert labels == {"engine": "copy", "format": "half-sbs", "device": "cpu"}
    assert frames == FRAMES
    assert got["stereo_infer_conversion_input_bytes_total"][1] == source.stat().st_size
    assert got["stereo_infer_conversion_seconds_count"][1] == 1
    assert got["stereo_infer_conversion_seconds_sum"][1] > 0


def test_a_broken_adapter_does_not_fail_the_conversion(
    source: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("STEREO_METRICS", "cloudwatch")  # and no region
    monkeypatch.delenv("AWS_REGION", raising=False)
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    monkeypatch.delenv("STEREO_METRICS_REGION", raising=False)
    with caplog.at_level(logging.WARNING):
        assert convert(source, tmp_path / "out.mp4") == exitcodes.OK
    assert (tmp_path / "out.mp4").stat().st_size > 0
    assert "conversion metrics not reported" in caplog.text
    assert "needs a region" in caplog.text


def test_the_server_reports_each_invocation(
    source: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    textfile = tmp_path / "serve.prom"
    monkeypatch.setenv("STEREO_METRICS_TEXTFILE", str(textfile))
    config = ServerConfig(
        engine="copy", engine_options=EngineOptions(device="cpu"), show_progress=False
    )
    service = InferenceService(config)
    service.load()
    for name in ("a.mp4", "b.mp4"):
        document = {
            "input_uri": source.as_uri(),
            "output_uri": (tmp_path / name).as_uri(),
            "format": "full-sbs",
        }
        service.invoke(build_request(document, None))
    got = figures(textfile)
    labels, conversions = got["stereo_infer_conversions_total"]
    assert labels == {"engine": "copy", "format": "full-sbs", "device": "cpu"}
    assert conversions == 2
    assert got["stereo_infer_conversion_frames_total"][1] == 2 * FRAMES
