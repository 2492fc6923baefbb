"""The HTTP inference server end to end: /ping, /invocations on file:// and real S3 (moto)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from stereo_infer.encoding import encoder_opens
from stereo_infer.engines import Engine, EngineJob, EngineOptions, get_engine
from stereo_infer.engines.formats import StereoFormat
from stereo_infer.progress import ProgressReporter
from stereo_infer.server import InferenceService, ServerConfig, make_server
from tests.engines.videos import make_testsrc, packets, stream_info
from tests.servers import MotoServer, free_port

BUCKET = "stereo-serve"
Post = Callable[..., tuple[int, dict[str, Any]]]


def http(
    url: str, body: object = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, Any]]:
    data = None
    if body is not None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers=headers or {})
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


@contextmanager
def running(service: InferenceService) -> Iterator[str]:
    httpd, _ = make_server(service.config, service)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    host, port = httpd.server_address[:2]
    try:
        yield f"http://{host!s}:{port}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(10)


def config(**changes: Any) -> ServerConfig:
    values: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": 0,
        "engine": "builtin",
        "engine_options": EngineOptions(device="cpu"),
        "depth_model": "Prior",
        "show_progress": False,
    }
    values.update(changes)
    return ServerConfig(**values)


def wait_ready(base: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, _ = http(f"{base}/ping")
        if status == 200:
            return
        time.sleep(0.05)
    raise AssertionError("server never became ready")


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("ffmpeg") is None:
        pytest.fail("ffmpeg not on PATH", pytrace=False)
    return make_testsrc(tmp_path_factory.mktemp("serve-media") / "clip.mp4")


@pytest.fixture(scope="module")
def builtin_server() -> Iterator[str]:
    with running(InferenceService(config())) as base:
        wait_ready(base)
        yield base


def test_ping_and_a_file_conversion(builtin_server: str, clip: Path, tmp_path: Path) -> None:
    assert http(f"{builtin_server}/ping") == (200, {"status": "ready", "engine": "builtin"})
    out = tmp_path / "out" / "seg.mp4"
    body = {
        "input_uri": clip.as_uri(),
        "output_uri": out.as_uri(),
        "format": "half-sbs",
        "stereo": {"divergence": 3.0, "convergence": 0.4, "preRollFrames": 2},
        "engine": "builtin",
        "encoding": {"codec": "h264", "crf": 23, "preset": "ultrafast"},
    }
    status, reply = http(f"{builtin_server}/invocations", body)
    assert status == 200, reply
    assert reply["outputUri"] == out.as_uri()
    assert reply["frames"] == 10 and reply["seconds"] > 0
    assert reply["videoSeconds"] == pytest.approx(10 / 30, abs=1e-3)
    assert reply["depthModel"] == "Prior" and reply["format"] == "half-sbs"
    info = stream_info(out)
    assert (info["width"], info["height"]) == (160, 90) and info["has_b_frames"] == 0
    assert len(packets(out)) == 10
    assert sorted(p.name for p in out.parent.iterdir()) == ["seg.mp4"]  # no partial files


def test_custom_attributes_header_and_input_location(
    builtin_server: str, clip: Path, tmp_path: Path
) -> None:
    out = tmp_path / "tb.mp4"
    request_doc = tmp_path / "request.json"
    request_doc.write_text(json.dumps({"inputUri": clip.as_uri(), "outputUri": out.as_uri()}))
    headers = {"X-Amzn-SageMaker-Custom-Attributes": "format=full-tb,divergence=2,crf=30"}
    status, reply = http(
        f"{builtin_server}/invocations", {"InputLocation": request_doc.as_uri()}, headers
    )
    assert status == 200, reply
    info = stream_info(out)
    assert (info["width"], info["height"]) == (160, 180)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"{not json", "body"),
        (b"[]", "body"),
        ({"output_uri": "file:///tmp/o.mp4", "format": "half-sbs"}, "inputUri"),
        ({"input_uri": "file:///in.mp4", "output_uri": "file:///o.mp4", "format": "x"}, "format"),
        (
            {
                "input_uri": "file:///in.mp4",
                "output_uri": "file:///o.mp4",
                "format": "half-sbs",
                "stereo": {"divergence": 50},
            },
            "stereo.divergence",
        ),
        (
            {
                "input_uri": "file:///in.mp4",
                "output_uri": "file:///o.mp4",
                "format": "half-sbs",
                "engine": "iw3",
            },
            "engine",
        ),
        (
            {
                "input_uri": "file:///in.mp4",
                "output_uri": "file:///o.mp4",
                "format": "half-sbs",
                "stereo": {"depthModel": "ZoeD_N"},
            },
            "stereo.depthModel",
        ),
        ({"InputLocation": "file:///no/such/request.json"}, "InputLocation"),
    ],
)
def test_bad_requests_get_400_naming_the_field(
    builtin_server: str, body: object, field: str
) -> None:
    status, reply = http(f"{builtin_server}/invocations", body)
    assert status == 400, reply
    assert reply["field"] == field and reply["exitCode"] == 3
    assert reply["error"].startswith(f"{field}: ")


@pytest.mark.skipif(encoder_opens("hevc_nvenc"), reason="this machine's ffmpeg runs NVENC")
def test_nvenc_where_ffmpeg_cannot_run_it_is_400(builtin_server: str, tmp_path: Path) -> None:
    body = {
        "input_uri": "file:///in.mp4",
        "output_uri": (tmp_path / "o.mp4").as_uri(),
        "format": "half-sbs",
        "encoding": {"codec": "hevc", "encoder": "nvenc"},
    }
    status, reply = http(f"{builtin_server}/invocations", body)
    assert status == 400 and reply["field"] == "encoding.encoder", reply
    assert "hevc_nvenc" in reply["error"]


def test_pre_roll_longer_than_the_input_is_400(
    builtin_server: str, clip: Path, tmp_path: Path
) -> None:
    body = {
        "input_uri": clip.as_uri(),
        "output_uri": (tmp_path / "o.mp4").as_uri(),
        "format": "half-sbs",
        "stereo": {"preRollFrames": 12},
    }
    status, reply = http(f"{builtin_server}/invocations", body)
    assert status == 400 and reply["field"] == "stereo.preRollFrames"
    assert not (tmp_path / "o.mp4").exists()


def test_missing_and_broken_inputs(builtin_server: str, tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(bytes(range(256)) * 64)
    out = (tmp_path / "o.mp4").as_uri()
    missing = {"input_uri": (tmp_path / "none.mp4").as_uri(), "output_uri": out, "format": "vr180"}
    status, reply = http(f"{builtin_server}/invocations", missing)
    assert status == 404 and reply["exitCode"] == 3
    broken = {**missing, "input_uri": garbage.as_uri()}
    status, reply = http(f"{builtin_server}/invocations", broken)
    assert status == 422 and reply["exitCode"] == 3
    assert not (tmp_path / "o.mp4").exists()


def test_unknown_paths(builtin_server: str) -> None:
    assert http(f"{builtin_server}/nope")[0] == 404
    assert http(f"{builtin_server}/nope", {"a": 1})[0] == 404


class SlowCopy:
    """The copy engine behind a gate, counting conversions running at once."""

    name = "copy"

    def __init__(self, loaded: threading.Event | None = None) -> None:
        self.loaded = loaded
        self.running = 0
        self.most = 0
        self.lock = threading.Lock()

    def prepare(self, stereo_format: StereoFormat, depth_model: str | None) -> None:
        if self.loaded is not None:
            assert self.loaded.wait(30)

    def convert(self, job: EngineJob, progress: ProgressReporter | None = None) -> None:
        with self.lock:
            self.running += 1
            self.most = max(self.most, self.running)
        time.sleep(0.3)
        get_engine("copy").convert(job, progress)
        with self.lock:
            self.running -= 1


def test_ping_is_503_while_loading_then_200() -> None:
    release = threading.Event()
    engine = SlowCopy(release)
    service = InferenceService(config(engine="copy"), lambda _n, _o: engine)
    with running(service) as base:
        assert http(f"{base}/ping") == (503, {"status": "loading"})
        body = {"input_uri": "file:///x.mp4", "output_uri": "file:///y.mp4", "format": "half-sbs"}
        status, reply = http(f"{base}/invocations", body)
        assert status == 503 and reply["exitCode"] == 75
        release.set()
        wait_ready(base, 10)


def test_ping_is_500_when_loading_fails() -> None:
    def broken(_name: str, _options: EngineOptions) -> Engine:
        raise RuntimeError("no GPU memory")

    with running(InferenceService(config(engine="copy"), broken)) as base:
        deadline = time.monotonic() + 10
        while http(f"{base}/ping")[0] == 503 and time.monotonic() < deadline:
            time.sleep(0.05)
        status, reply = http(f"{base}/ping")
        assert status == 500 and "no GPU memory" in reply["error"]


@pytest.mark.parametrize(("concurrency", "most"), [(1, 1), (2, 2)])
def test_one_conversion_at_a_time_unless_configured(
    clip: Path, tmp_path: Path, concurrency: int, most: int
) -> None:
    engine = SlowCopy()
    service = InferenceService(
        config(engine="copy", concurrency=concurrency), lambda _n, _o: engine
    )
    with running(service) as base:
        wait_ready(base, 10)
        results: list[int] = []

        def post(i: int) -> None:
            body = {
                "input_uri": clip.as_uri(),
                "output_uri": (tmp_path / f"o{i}.mp4").as_uri(),
                "format": "half-sbs",
            }
            results.append(http(f"{base}/invocations", body)[0])

        threads = [threading.Thread(target=post, args=(i,)) for i in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    assert results == [200, 200, 200]
    assert engine.most == most


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoServer]:
    with MotoServer() as server:
        server.client("s3").create_bucket(Bucket=BUCKET)
        yield server


def test_s3_input_and_output_through_moto(
    builtin_server: str,
    moto: MotoServer,
    clip: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The server reads credentials and endpoint from its environment, as in a pod.
    for key, value in moto.env.items():
        monkeypatch.setenv(key, value)
    s3 = moto.client("s3")
    prefix = f"t-{uuid.uuid4().hex[:8]}"
    s3.upload_file(str(clip), BUCKET, f"{prefix}/input.mp4")
    body = {
        "input_uri": f"s3://{BUCKET}/{prefix}/input.mp4",
        "output_uri": f"s3://{BUCKET}/{prefix}/out/output.mp4",
        "format": "cross-eyed",
        "stereo": {"preRollFrames": 3},
        "encoding": {"preset": "ultrafast"},
    }
    status, reply = http(f"{builtin_server}/invocations", body)
    assert status == 200, reply
    assert reply["frames"] == 9
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix)["Contents"]]
    assert sorted(keys) == [f"{prefix}/input.mp4", f"{prefix}/out/output.mp4"]
    local = tmp_path / "output.mp4"
    s3.download_file(BUCKET, f"{prefix}/out/output.mp4", str(local))
    info = stream_info(local)
    assert (info["width"], info["height"]) == (320, 90)
    assert len(packets(local)) == 9

    missing = {**body, "input_uri": f"s3://{BUCKET}/{prefix}/nothing.mp4"}
    status, reply = http(f"{builtin_server}/invocations", missing)
    assert status == 404, reply


def test_serve_command_answers_ping_and_stops_cleanly_on_sigterm(
    clip: Path, tmp_path: Path
) -> None:
    port = free_port()
    command = [sys.executable, "-m", "stereo_infer", "--no-progress", "serve"]
    command += ["--host", "127.0.0.1", "--port", str(port), "--engine", "copy"]
    proc = subprocess.Popen(
        command,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if http(f"{base}/ping")[0] == 200:
                    break
            except OSError:
                pass
            time.sleep(0.1)
        else:
            raise AssertionError("serve never answered /ping")
        out = tmp_path / "o.mp4"
        body = {"input_uri": clip.as_uri(), "output_uri": out.as_uri(), "format": "half-sbs"}
        assert http(f"{base}/invocations", body)[0] == 200
        assert out.exists()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.stderr is not None
    assert "listening on" in proc.stderr.read()
