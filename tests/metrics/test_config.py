"""Choosing the adapter from the environment, and the errors of a bad choice."""

from __future__ import annotations

import logging

import pytest

from stereo_infer.metrics import (
    Conversion,
    MetricsBackend,
    MetricsConfig,
    MetricsConfigError,
    open_sink,
    report,
)
from stereo_infer.metrics.cloudmonitoring import CloudMonitoringSink
from stereo_infer.metrics.cloudwatch import CloudWatchSink
from stereo_infer.metrics.prometheus import PrometheusSink


def test_defaults() -> None:
    config = MetricsConfig.from_env({"HOSTNAME": "pod-1"})
    assert config.backend is MetricsBackend.PROMETHEUS
    assert (config.namespace, config.job, config.instance) == ("stereo", "stereo-infer", "pod-1")
    assert open_sink(config) is None  # nowhere to push to


@pytest.mark.parametrize(
    ("env", "kind"),
    [
        ({"STEREO_METRICS_TEXTFILE": "/tmp/x.prom"}, PrometheusSink),
        ({"STEREO_METRICS": "cloudwatch", "AWS_REGION": "eu-west-1"}, CloudWatchSink),
        ({"STEREO_METRICS": "CloudMonitoring", "GOOGLE_CLOUD_PROJECT": "p"}, CloudMonitoringSink),
    ],
)
def test_the_adapter_follows_the_setting(env: dict[str, str], kind: type) -> None:
    assert isinstance(open_sink(MetricsConfig.from_env(env)), kind)


def test_cloudwatch_settings() -> None:
    env = {
        "STEREO_METRICS": "cloudwatch",
        "STEREO_METRICS_REGION": "us-west-2",
        "AWS_REGION": "eu-west-1",
        "STEREO_METRICS_ENDPOINT": "http://127.0.0.1:9",
        "STEREO_METRICS_NAMESPACE": "Films",
    }
    config = MetricsConfig.from_env(env)
    assert (config.region, config.endpoint, config.namespace) == (
        "us-west-2",
        "http://127.0.0.1:9",
        "Films",
    )


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"STEREO_METRICS": "statsd"}, "STEREO_METRICS must be one of prometheus, cloudwatch"),
        ({"STEREO_METRICS": "cloudwatch"}, "cloudwatch needs a region"),
        ({"STEREO_METRICS": "cloudmonitoring"}, "cloudmonitoring needs a project"),
    ],
)
def test_bad_settings_are_named(env: dict[str, str], message: str) -> None:
    with pytest.raises(MetricsConfigError, match=message):
        MetricsConfig.from_env(env)


def test_bad_settings_never_fail_the_caller(caplog: pytest.LogCaptureFixture) -> None:
    conversion = Conversion("copy", "half-sbs", 12, 1.0, 1000, "auto")
    with caplog.at_level(logging.WARNING):
        assert report(conversion, {"STEREO_METRICS": "statsd"}) is False
    assert "STEREO_METRICS must be one of" in caplog.text
