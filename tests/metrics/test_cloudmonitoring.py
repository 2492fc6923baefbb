"""The Cloud Monitoring adapter: no emulator exists, so the TimeSeries payload is checked,
and the request it makes is validated by the client library's own request type."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from google.cloud import monitoring_v3

from stereo_infer.metrics import Conversion
from stereo_infer.metrics.cloudmonitoring import CloudMonitoringSink, time_series

CONVERSION = Conversion(
    engine="iw3",
    format="half-ou",
    frames=120,
    wall_seconds=8.0,
    input_bytes=16_000_000,
    device="cuda:1",
)
AT = datetime(2030, 1, 1, 12, 0, 0, 250000, tzinfo=UTC)


def test_one_gauge_series_per_figure_on_the_global_resource() -> None:
    series = time_series(CONVERSION, "films-prod", "stereo", AT)
    values = {s.metric.type: s.points[0].value.double_value for s in series}
    assert values == {
        "custom.googleapis.com/stereo/conversion_seconds": 8.0,
        "custom.googleapis.com/stereo/conversion_frames": 120.0,
        "custom.googleapis.com/stereo/conversion_input_bytes": 16_000_000.0,
        "custom.googleapis.com/stereo/conversion_frames_per_second": 15.0,
        "custom.googleapis.com/stereo/conversion_seconds_per_megabyte": 0.5,
    }
    for one in series:
        assert dict(one.metric.labels) == {"engine": "iw3", "format": "half-ou", "device": "cuda:1"}
        assert one.resource.type == "global"
        assert dict(one.resource.labels) == {"project_id": "films-prod"}
        [point] = one.points
        end = point.interval.end_time
        assert end.timestamp() == AT.timestamp()


def test_figures_that_cannot_be_told_are_left_out() -> None:
    instant = Conversion("copy", "half-sbs", 3, wall_seconds=0.0, input_bytes=0, device="cpu")
    names = [s.metric.type.rsplit("/", 1)[1] for s in time_series(instant, "p", "stereo", AT)]
    assert names == ["conversion_seconds", "conversion_frames", "conversion_input_bytes"]


class RecordingClient:
    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def create_time_series(self, **kwargs: Any) -> None:
        self.calls.append(kwargs)


def test_the_sink_sends_one_valid_create_time_series_request() -> None:
    client = RecordingClient()
    CloudMonitoringSink("films-prod", "stereo", client=client).record(CONVERSION)
    [call] = client.calls
    # The library's request type accepts exactly what the adapter passes.
    request = monitoring_v3.CreateTimeSeriesRequest(**call)
    assert request.name == "projects/films-prod"
    assert len(request.time_series) == 5
    wire = monitoring_v3.CreateTimeSeriesRequest.to_dict(request)
    first = wire["time_series"][0]
    assert first["metric"]["type"] == "custom.googleapis.com/stereo/conversion_seconds"
    assert first["points"][0]["value"]["double_value"] == 8.0
