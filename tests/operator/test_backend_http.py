"""The `http` backend against the real inference server (copy engine, file:// URIs) and
against small local stand-ins for a slow, failing or absent service."""

from __future__ import annotations

import dataclasses
import shutil
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from stereo_infer.server import InferenceService
from stereo_operator.backends import AttemptPhase, backend_for
from stereo_operator.backends.http import (
    INPUT_NOT_FOUND,
    OPERATOR_RESTARTED,
    SERVICE_UNAVAILABLE,
    UNCONVERTIBLE_INPUT,
    HttpBackend,
    HttpDispatcher,
)
from stereo_operator.reconcile import Fetched, Snapshot, reconcile, storage_needs
from stereo_operator.segments import StoredObject
from stereo_operator.views import SegmentView
from stereo_types.segment import CompletionSource
from tests.engines.videos import make_testsrc
from tests.operator.factories import CONFIG, REF, running, segment, snapshot, spec, status
from tests.server.test_server import config as server_config
from tests.server.test_server import running as serving
from tests.server.test_server import wait_ready
from tests.servers import free_port


def http_spec(url: str, *, engine: str = "copy", retries: int = 2, timeout: int = 60) -> Any:
    return spec(
        backend={
            "type": "http",
            "engine": engine,
            "http": {"url": url, "retries": retries, "timeoutSeconds": timeout},
        }
    )


def seg_for(
    vj_spec: Any, index: int, input_uri: str, output_uri: str, **status: Any
) -> SegmentView:
    view = running(index, **status) if status.get("attempts") else segment(index, vj_spec=vj_spec)
    # No window: the server converts the whole clip, as one segment.
    new_spec = view.spec.model_copy(
        update={
            "input_uri": input_uri,
            "output_uri": output_uri,
            "backend": vj_spec.backend,
            "window": None,
        }
    )
    return dataclasses.replace(view, spec=new_spec)


@pytest.fixture
def dispatcher() -> Iterator[HttpDispatcher]:
    d = HttpDispatcher(4, backoff_seconds=0.01, max_backoff_seconds=0.05)
    yield d
    d.shutdown()


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("ffmpeg") is None:
        pytest.fail("ffmpeg not on PATH", pytrace=False)
    return make_testsrc(tmp_path_factory.mktemp("http-backend") / "clip.mp4")


@pytest.fixture(scope="module")
def copy_server() -> Iterator[str]:
    with serving(InferenceService(server_config(engine="copy"))) as base:
        wait_ready(base)
        yield base


class _Scripted(BaseHTTPRequestHandler):
    """Answers POST /invocations with the server's next scripted status (after a gate)."""

    statuses: list[int]
    hits: list[float]
    gate: threading.Event

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.hits.append(time.monotonic())
        self.gate.wait(30)
        status = self.statuses.pop(0) if self.statuses else 200
        body = b'{"error": "scripted"}'
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def scripted(*statuses: int, gate: threading.Event | None = None) -> Iterator[tuple[str, Any]]:
    opened = threading.Event()
    opened.set()
    handler = type(
        "Handler",
        (_Scripted,),
        {"statuses": list(statuses), "hits": [], "gate": gate or opened},
    )
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", handler
    finally:
        (gate or opened).set()
        httpd.shutdown()
        httpd.server_close()


def running_snapshot(vj_spec: Any, seg: SegmentView, obs: Any, **kw: Any) -> Snapshot:
    """A Running VideoJob of one segment, observed by the backend under test."""
    snap = snapshot(
        vj_spec=vj_spec,
        vj_status=status(phase="Running", segmentsTotal=1),
        segments=[seg],
        **kw,
    )
    return dataclasses.replace(snap, observations={0: obs})


def backend(vj_spec: Any, dispatcher: HttpDispatcher) -> HttpBackend:
    return HttpBackend(REF, vj_spec, CONFIG, None, dispatcher)


def test_backend_for_builds_the_http_backend() -> None:
    built = backend_for(REF, http_spec("http://infer:8080"), CONFIG, [])
    assert isinstance(built, HttpBackend) and built.name == "http"


def test_a_200_makes_the_output_and_the_attempt_succeeded_but_not_the_segment(
    copy_server: str, clip: Path, tmp_path: Path, dispatcher: HttpDispatcher
) -> None:
    vj_spec = http_spec(copy_server)
    out = tmp_path / "segments" / "00000" / "output.mp4"
    seg = seg_for(vj_spec, 0, clip.as_uri(), out.as_uri())
    handle = backend(vj_spec, dispatcher).submit(seg, 1)
    assert handle
    assert dispatcher.wait_idle(60)
    assert out.is_file() and out.stat().st_size > 0

    # The reconcile round sees attempt 1 succeeded; completion still needs the output check.
    seg = seg_for(vj_spec, 0, clip.as_uri(), out.as_uri(), attempts=1)
    obs = backend(vj_spec, dispatcher).observe(seg, 1)
    assert obs.current.phase is AttemptPhase.SUCCEEDED and obs.active_attempts == frozenset()
    finished = obs.current.finished_at
    assert finished is not None
    snap = running_snapshot(vj_spec, seg, obs, now=finished)
    early = reconcile(snap, Fetched(), CONFIG)
    assert early.segment_patches == []  # within completionGraceSeconds: wait for the event
    later = dataclasses.replace(snap, now=finished + timedelta(seconds=5))
    assert storage_needs(later).segment_outputs == ((0, out.as_uri()),)
    found = StoredObject(uri=out.as_uri(), size=out.stat().st_size)
    actions = reconcile(later, Fetched(segment_outputs={0: found}), CONFIG)
    [patch] = actions.segment_patches
    assert patch.completed is not None and patch.completed.source is CompletionSource.RECONCILE
    assert patch.patch["phase"] == "Completed"


@pytest.mark.parametrize(
    ("case", "reason"),
    [("engine", "BadRequest"), ("missing", INPUT_NOT_FOUND), ("garbage", UNCONVERTIBLE_INPUT)],
)
def test_4xx_answers_fail_the_attempt_as_bad_input(
    copy_server: str,
    clip: Path,
    tmp_path: Path,
    dispatcher: HttpDispatcher,
    case: str,
    reason: str,
) -> None:
    vj_spec = http_spec(copy_server, engine="builtin" if case == "engine" else "copy")
    source = clip
    if case == "missing":
        source = tmp_path / "nope.mp4"
    elif case == "garbage":
        source = tmp_path / "garbage.mp4"
        source.write_bytes(b"not a video at all" * 100)
    out = tmp_path / "out.mp4"
    seg = seg_for(vj_spec, 0, source.as_uri(), out.as_uri())
    backend(vj_spec, dispatcher).submit(seg, 1)
    assert dispatcher.wait_idle(60)
    seg = seg_for(vj_spec, 0, source.as_uri(), out.as_uri(), attempts=1)
    obs = backend(vj_spec, dispatcher).observe(seg, 1)
    assert obs.current.phase is AttemptPhase.FAILED
    assert obs.current.bad_input and obs.current.reason == reason, obs.current
    assert not out.exists()

    # Bad input fails the segment at once, whatever retries are left.
    snap = running_snapshot(vj_spec, seg, obs)
    actions = reconcile(snap, Fetched(), CONFIG)
    assert [p.patch["phase"] for p in actions.segment_patches] == ["Failed"]


def test_a_service_that_is_down_is_transient_after_the_retries(
    dispatcher: HttpDispatcher,
) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    vj_spec = http_spec(url, retries=2)
    seg = seg_for(vj_spec, 0, "file:///in.mp4", "file:///out.mp4")
    backend(vj_spec, dispatcher).submit(seg, 1)
    assert dispatcher.wait_idle(30)
    seg = seg_for(vj_spec, 0, "file:///in.mp4", "file:///out.mp4", attempts=1)
    obs = backend(vj_spec, dispatcher).observe(seg, 1)
    assert obs.current.phase is AttemptPhase.FAILED and not obs.current.bad_input
    assert obs.current.reason == SERVICE_UNAVAILABLE
    assert "after 3 tries" in (obs.current.message or "")

    # The operator retries with its own backoff (maxRetries 2 in the factory spec).
    snap = running_snapshot(vj_spec, seg, obs)
    actions = reconcile(snap, Fetched(), CONFIG)
    [patch] = actions.segment_patches
    assert patch.retry and patch.patch["phase"] == "Pending"
    assert patch.patch["lastFailureReason"] == SERVICE_UNAVAILABLE


def test_503_is_retried_then_200_succeeds(dispatcher: HttpDispatcher) -> None:
    with scripted(503, 503, 200) as (url, handler):
        vj_spec = http_spec(url, retries=2)
        seg = seg_for(vj_spec, 0, "file:///in.mp4", "file:///out.mp4")
        backend(vj_spec, dispatcher).submit(seg, 1)
        assert dispatcher.wait_idle(30)
        assert len(handler.hits) == 3
    state = dispatcher.state(seg.uid, 1)
    assert state is not None and state.phase is AttemptPhase.SUCCEEDED


def test_500_fails_transient_without_retrying_the_request(dispatcher: HttpDispatcher) -> None:
    with scripted(500, 200) as (url, handler):
        vj_spec = http_spec(url, retries=3)
        seg = seg_for(vj_spec, 0, "file:///in.mp4", "file:///out.mp4")
        backend(vj_spec, dispatcher).submit(seg, 1)
        assert dispatcher.wait_idle(30)
        assert len(handler.hits) == 1
    state = dispatcher.state(seg.uid, 1)
    assert state is not None and state.phase is AttemptPhase.FAILED and not state.bad_input


def test_submit_returns_at_once_and_sends_one_request_per_attempt(
    dispatcher: HttpDispatcher,
) -> None:
    gate = threading.Event()
    with scripted(200, gate=gate) as (url, handler):
        vj_spec = http_spec(url)
        seg = seg_for(vj_spec, 0, "file:///in.mp4", "file:///out.mp4")
        the_backend = backend(vj_spec, dispatcher)
        started = time.monotonic()
        for _ in range(3):
            the_backend.submit(seg, 1)
        assert time.monotonic() - started < 0.5  # the service has not answered yet
        deadline = time.monotonic() + 10
        while not handler.hits and time.monotonic() < deadline:
            time.sleep(0.01)
        running_seg = seg_for(vj_spec, 0, "file:///in.mp4", "file:///out.mp4", attempts=1)
        obs = backend(vj_spec, dispatcher).observe(running_seg, 1)
        assert obs.current.phase is AttemptPhase.RUNNING
        assert obs.active_attempts == frozenset({1}) and obs.latest_attempt == 1
        gate.set()
        assert dispatcher.wait_idle(10)
        assert len(handler.hits) == 1


def test_cancel_stops_waiting_for_an_attempt(dispatcher: HttpDispatcher) -> None:
    gate = threading.Event()
    with scripted(200, gate=gate) as (url, _handler):
        vj_spec = http_spec(url)
        seg = seg_for(vj_spec, 0, "file:///in.mp4", "file:///out.mp4", attempts=1)
        the_backend = backend(vj_spec, dispatcher)
        the_backend.submit(seg, 1)
        the_backend.cancel(seg, [1])
        obs = backend(vj_spec, dispatcher).observe(seg, 1)
        assert obs.active_attempts == frozenset()
        assert obs.current.phase is AttemptPhase.FAILED
        gate.set()
        assert dispatcher.wait_idle(10)
    state = dispatcher.state(seg.uid, 1)
    assert state is not None and state.reason == "Cancelled"  # a late 200 changes nothing


def test_an_attempt_in_flight_at_a_restart_fails_and_is_retried(
    dispatcher: HttpDispatcher,
) -> None:
    vj_spec = http_spec("http://infer:8080")
    seg = seg_for(vj_spec, 0, "file:///in.mp4", "file:///out.mp4", attempts=1)
    # A fresh dispatcher (a restarted operator) never sent attempt 1.
    obs = backend(vj_spec, dispatcher).observe(seg, 1)
    assert obs.current.phase is AttemptPhase.FAILED and not obs.current.bad_input
    assert obs.current.reason == OPERATOR_RESTARTED
    assert obs.current.finished_at == dispatcher.started_at
    snap = running_snapshot(vj_spec, seg, obs)
    [patch] = reconcile(snap, Fetched(), CONFIG).segment_patches
    assert patch.retry and patch.patch["lastFailureReason"] == OPERATOR_RESTARTED
    # Pending segments and attempts never started are not "restarted" ones.
    pending = seg_for(vj_spec, 0, "file:///in.mp4", "file:///out.mp4")
    assert backend(vj_spec, dispatcher).observe(pending, 0).current.phase is AttemptPhase.MISSING


def test_the_pool_is_bounded() -> None:
    bounded = HttpDispatcher(2, backoff_seconds=0.01)
    gate = threading.Event()
    try:
        with scripted(gate=gate) as (url, handler):
            vj_spec = http_spec(url)
            the_backend = backend(vj_spec, bounded)
            for index in range(4):
                the_backend.submit(seg_for(vj_spec, index, "file:///i.mp4", "file:///o.mp4"), 1)
            time.sleep(0.5)
            assert len(handler.hits) == 2  # two workers, two requests on the wire
            gate.set()
            assert bounded.wait_idle(10)
            assert len(handler.hits) == 4
    finally:
        bounded.shutdown()
