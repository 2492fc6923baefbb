"""The Prometheus adapter: a push to a (recording) Pushgateway, and the textfile."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from stereo_infer.metrics import Conversion, report
from tests.metrics.recorder import pushgateway
from tests.servers import free_port

CONVERSION = Conversion(
    engine="builtin",
    format="half-sbs",
    frames=48,
    wall_seconds=4.0,
    input_bytes=2_000_000,
    device="cpu",
)
LABELS = {"engine": "builtin", "format": "half-sbs", "device": "cpu"}


def samples(exposition: str) -> dict[str, float]:
    """name -> value of the samples carrying LABELS."""
    found = {}
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            if {k: sample.labels.get(k) for k in LABELS} == LABELS and "le" not in sample.labels:
                found[sample.name] = sample.value
    return found


def test_a_conversion_is_pushed_to_the_gateway_under_the_pods_group() -> None:
    with pushgateway() as gateway:
        env = {"STEREO_METRICS_PUSHGATEWAY": gateway.url, "HOSTNAME": "convert-a-0"}
        assert report(CONVERSION, env) is True
    [push] = gateway.pushes
    assert push.method == "PUT"  # replaces the pod's group
    assert push.path == "/metrics/job/stereo-infer/instance/convert-a-0"
    assert push.content_type.startswith("text/plain")
    got = samples(push.body)
    assert got["stereo_infer_conversions_total"] == 1
    assert got["stereo_infer_conversion_frames_total"] == 48
    assert got["stereo_infer_conversion_input_bytes_total"] == 2_000_000
    assert got["stereo_infer_conversion_seconds_sum"] == 4.0
    assert got["stereo_infer_conversion_seconds_count"] == 1
    assert got["stereo_infer_conversion_frames_per_second_sum"] == 12.0
    assert got["stereo_infer_conversion_seconds_per_megabyte_sum"] == 2.0
    assert got["stereo_infer_last_conversion_timestamp_seconds"] > 1.7e9


def test_a_long_lived_process_pushes_its_running_totals() -> None:
    with pushgateway() as gateway:
        env = {
            "STEREO_METRICS": "prometheus",
            "STEREO_METRICS_PUSHGATEWAY": gateway.url,
            "STEREO_METRICS_JOB": "stereo-serve",
            "HOSTNAME": "serve-0",
        }
        assert report(CONVERSION, env) and report(CONVERSION, env)
    assert [p.path for p in gateway.pushes] == ["/metrics/job/stereo-serve/instance/serve-0"] * 2
    assert samples(gateway.pushes[1].body)["stereo_infer_conversions_total"] == 2


def test_the_textfile_holds_the_figures(tmp_path: Path) -> None:
    path = tmp_path / "stereo.prom"
    assert report(CONVERSION, {"STEREO_METRICS_TEXTFILE": str(path), "HOSTNAME": "t"})
    got = samples(path.read_text())
    assert got["stereo_infer_conversion_frames_total"] == 48
    assert got["stereo_infer_conversion_seconds_sum"] == 4.0


def test_a_gateway_error_is_a_warning_not_a_failure(caplog: pytest.LogCaptureFixture) -> None:
    with pushgateway(status=500) as gateway, caplog.at_level(logging.WARNING):
        env = {"STEREO_METRICS_PUSHGATEWAY": gateway.url, "HOSTNAME": "p"}
        assert report(CONVERSION, env) is False
    assert len(gateway.pushes) == 1
    assert "conversion metrics not reported" in caplog.text and "500" in caplog.text


def test_an_unreachable_gateway_is_a_warning_not_a_failure(
    caplog: pytest.LogCaptureFixture,
) -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    with caplog.at_level(logging.WARNING):
        assert report(CONVERSION, {"STEREO_METRICS_PUSHGATEWAY": url, "HOSTNAME": "p"}) is False
    assert "conversion metrics not reported" in caplog.text


def test_the_default_with_no_target_reports_nothing(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        assert report(CONVERSION, {}) is False
    assert caplog.text == ""


def test_metrics_off() -> None:
    with pushgateway() as gateway:
        env = {"STEREO_METRICS": "none", "STEREO_METRICS_PUSHGATEWAY": gateway.url}
        assert report(CONVERSION, env) is False
    assert gateway.pushes == []
