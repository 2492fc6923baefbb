"""The http backend on the real local cluster: split and assemble run as Jobs, each segment
is one POST to a real inference server (copy engine) that the operator reaches directly."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from stereo_infer.engines import EngineJob, get_engine
from stereo_infer.engines.formats import StereoFormat
from stereo_infer.progress import ProgressReporter
from stereo_infer.server import InferenceService
from tests.operator.harness import Harness, file_path
from tests.server.test_server import config as server_config
from tests.server.test_server import running as serving
from tests.server.test_server import wait_ready
from tests.servers import free_port

# The fixtures (cluster_access, harness, media) live in the harness module.
pytest_plugins = ["tests.operator.harness"]
pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module")
def copy_server() -> Iterator[str]:
    with serving(InferenceService(server_config(engine="copy", concurrency=2))) as base:
        wait_ready(base)
        yield base


def test_http_backend_converts_a_video_without_inference_jobs(
    harness: Harness, media: dict, copy_server: str
) -> None:
    harness.start_operator()
    harness.create_videojob(
        "remote",
        media["4s"],
        backend={"type": "http", "engine": "copy", "http": {"url": copy_server, "retries": 1}},
    )
    vj = harness.wait_phase("remote", "Succeeded", "Failed", timeout=120)
    assert vj["status"]["phase"] == "Succeeded", vj["status"]
    assert harness.jobs("inference") == []  # every attempt went to the service
    segments = harness.segments("remote")
    assert segments and all(s["status"]["phase"] == "Completed" for s in segments)
    # A 200 does not complete a segment: the operator's output check does (no watcher here).
    assert {s["status"]["completion"]["source"] for s in segments} == {"reconcile"}
    assert {s["status"]["attempts"] for s in segments} == {1}
    assert file_path(vj["status"]["outputUri"]).stat().st_size > 0


def test_http_backend_bad_input_fails_the_videojob_at_once(
    harness: Harness, media: dict, copy_server: str
) -> None:
    harness.start_operator()
    # The server runs the copy engine: asking for another is a 400 naming the field.
    harness.create_videojob(
        "wrong",
        media["4s"],
        backend={"type": "http", "engine": "builtin", "http": {"url": copy_server}},
    )
    vj = harness.wait_phase("wrong", "Failed", timeout=90)
    assert "BadRequest" in vj["status"]["message"] and "engine" in vj["status"]["message"]
    failed = [s for s in harness.segments("wrong") if s.get("status", {}).get("phase") == "Failed"]
    # Those that ran failed at their first attempt; the others were stopped, saying why.
    ran = [s for s in failed if s["status"]["lastFailureReason"] != "VideoJobFailed"]
    assert ran and all(s["status"]["attempts"] == 1 for s in ran)


def test_http_backend_service_down_retries_then_fails(harness: Harness, media: dict) -> None:
    harness.start_operator()
    url = f"http://127.0.0.1:{free_port()}"
    harness.create_videojob(
        "down",
        media["4s"],
        maxRetries=1,
        backend={"type": "http", "engine": "copy", "http": {"url": url, "retries": 0}},
    )
    vj = harness.wait_phase("down", "Failed", timeout=90)
    assert "ServiceUnavailable" in vj["status"]["message"], vj["status"]
    assert any(s.get("status", {}).get("attempts") == 2 for s in harness.segments("down"))


class GatedCopy:
    """The copy engine, holding every conversion until the gate opens."""

    name = "copy"

    def __init__(self, gate: threading.Event) -> None:
        self.gate = gate
        self.entered = threading.Event()

    def prepare(self, stereo_format: StereoFormat, depth_model: str | None) -> None:
        pass

    def convert(self, job: EngineJob, progress: ProgressReporter | None = None) -> None:
        self.entered.set()
        self.gate.wait(60)
        get_engine("copy").convert(job, progress)


def test_an_http_attempt_in_flight_when_the_operator_dies_is_retried(
    harness: Harness, media: dict
) -> None:
    gate = threading.Event()
    engine = GatedCopy(gate)
    service = InferenceService(server_config(engine="copy", concurrency=2), lambda _n, _o: engine)
    with serving(service) as base:
        wait_ready(base)
        first = harness.start_operator()
        harness.create_videojob(
            "crash",
            media["4s"],
            parallelism=1,
            backend={"type": "http", "engine": "copy", "http": {"url": base}},
        )
        harness.wait(lambda: engine.entered.is_set() or None, 90, "the first request")
        harness.wait(
            lambda: [s for s in harness.segments("crash") if s.get("status", {}).get("attempts")],
            30,
            "the attempt recorded in the Segment's status",
        )
        first.kill()
        gate.set()  # the lost request still finishes at the service; nobody hears the answer
        harness.start_operator()
        vj = harness.wait_phase("crash", "Succeeded", "Failed", timeout=120)
    assert vj["status"]["phase"] == "Succeeded", vj["status"]
    retried = [s for s in harness.segments("crash") if s["status"]["attempts"] == 2]
    assert [s["status"]["lastFailureReason"] for s in retried] == ["OperatorRestarted"]
