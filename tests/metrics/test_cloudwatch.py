"""The CloudWatch adapter against a real moto server: what it puts can be read back."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from stereo_infer.metrics import Conversion, report
from stereo_infer.metrics.cloudwatch import metric_data
from tests.servers import MotoServer, free_port

CONVERSION = Conversion(
    engine="builtin",
    format="full-sbs",
    frames=60,
    wall_seconds=5.0,
    input_bytes=4_000_000,
    device="cuda",
)
DIMENSIONS = [
    {"Name": "Engine", "Value": "builtin"},
    {"Name": "Format", "Value": "full-sbs"},
    {"Name": "Device", "Value": "cuda"},
]


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoServer]:
    with MotoServer() as server:
        yield server


@pytest.fixture
def aws_env(moto: MotoServer, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The adapter's settings; boto3 finds the credentials in the process environment."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", moto.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", moto.secret_key)
    return {
        "STEREO_METRICS": "cloudwatch",
        "STEREO_METRICS_REGION": moto.region,
        "STEREO_METRICS_ENDPOINT": moto.endpoint_url,
        "STEREO_METRICS_NAMESPACE": f"Stereo/{uuid.uuid4().hex[:8]}",
    }


def test_put_metrics_are_listed_and_their_statistics_read_back(
    moto: MotoServer, aws_env: dict[str, str]
) -> None:
    namespace = aws_env["STEREO_METRICS_NAMESPACE"]
    assert report(CONVERSION, aws_env) is True
    assert report(CONVERSION, aws_env) is True
    cloudwatch = moto.client("cloudwatch")
    listed = cloudwatch.list_metrics(Namespace=namespace)["Metrics"]
    # moto lists a metric once per put; CloudWatch once per name and dimensions.
    assert sorted({m["MetricName"] for m in listed}) == [
        "ConversionFrames",
        "ConversionFramesPerSecond",
        "ConversionInputBytes",
        "ConversionSeconds",
        "ConversionSecondsPerMegabyte",
    ]
    assert all(
        sorted(m["Dimensions"], key=lambda d: d["Name"])
        == sorted(DIMENSIONS, key=lambda d: d["Name"])
        for m in listed
    )
    now = datetime.now(UTC)

    def statistics(name: str) -> dict[str, float]:
        [point] = cloudwatch.get_metric_statistics(
            Namespace=namespace,
            MetricName=name,
            Dimensions=DIMENSIONS,
            StartTime=now - timedelta(minutes=10),
            EndTime=now + timedelta(minutes=10),
            Period=3600,
            Statistics=["Sum", "SampleCount", "Maximum"],
        )["Datapoints"]
        return point  # type: ignore[no-any-return]

    seconds = statistics("ConversionSeconds")
    assert (seconds["SampleCount"], seconds["Sum"], seconds["Unit"]) == (2, 10.0, "Seconds")
    assert statistics("ConversionFramesPerSecond")["Maximum"] == 12.0
    assert statistics("ConversionSecondsPerMegabyte")["Maximum"] == 1.25
    assert statistics("ConversionInputBytes")["Sum"] == 8_000_000


def test_an_unreachable_cloudwatch_is_a_warning_not_a_failure(
    aws_env: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    env = {**aws_env, "STEREO_METRICS_ENDPOINT": f"http://127.0.0.1:{free_port()}"}
    assert report(CONVERSION, env) is False
    assert "conversion metrics not reported" in caplog.text


def test_figures_that_cannot_be_told_are_left_out() -> None:
    instant = Conversion("copy", "half-sbs", 3, wall_seconds=0.0, input_bytes=0, device="cpu")
    names = [d["MetricName"] for d in metric_data(instant, datetime.now(UTC))]
    assert names == ["ConversionSeconds", "ConversionFrames", "ConversionInputBytes"]
