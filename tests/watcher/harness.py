"""Running the watcher as a subprocess, and the cluster-side helpers its tests share."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client
from prometheus_client.parser import text_string_to_metric_families

from stereo_cluster.controlplane import ClusterState
from stereo_types.names import GROUP, SEGMENT_PLURAL, VERSION, VIDEOJOB_PLURAL, segment_name
from tests.integration.kube import eventually
from tests.servers import free_port, http_status

ROOT = Path(__file__).resolve().parents[2]
RBAC_MANIFEST = ROOT / "operator" / "stereo_operator" / "watcher" / "rbac.yaml"
WATCHER_NAMESPACE = "stereo-system"
WATCHER_SA = "stereo-watcher"


# --- the watcher process -------------------------------------------------------------------


class WatcherProcess:
    """``python -m stereo_operator.watcher`` with a config file; restartable on one port."""

    def __init__(self, workdir: Path, config: dict[str, Any], env: dict[str, str]) -> None:
        self.workdir = workdir
        self.port = int(config["http"]["port"])
        self.config_path = workdir / "watcher.yaml"
        self.config = config
        self.write_config()
        self.env = env
        self.log_path = workdir / "watcher.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def write_config(self) -> None:
        self.config_path.write_text(yaml.safe_dump(self.config, sort_keys=False))

    def start(self, wait_ready: bool = True) -> None:
        assert self.process is None or self.process.poll() is not None, "already running"
        env = {**os.environ, **self.env, "STEREO_WATCHER_CONFIG": str(self.config_path)}
        with open(self.log_path, "ab") as log:
            log.write(f"--- start {self.starts} ---\n".encode())
            self.process = subprocess.Popen(
                [sys.executable, "-m", "stereo_operator.watcher"],
                env=env,
                cwd=self.workdir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.starts += 1
        if wait_ready:
            self.wait_ready()

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(
                    f"watcher exited ({self.process.returncode}):\n{self.log_tail()}"
                )
            if http_status(f"{self.url}/readyz") == 200:
                return
            time.sleep(0.1)
        raise AssertionError(
            f"watcher not ready after {timeout}s: {self.readyz()}\n{self.log_tail()}"
        )

    def readyz(self) -> dict[str, Any] | None:
        try:
            with urllib.request.urlopen(f"{self.url}/readyz", timeout=2) as response:
                return dict(json.loads(response.read()))
        except urllib.error.HTTPError as err:
            return dict(json.loads(err.read()))
        except OSError:
            return None

    def kill(self) -> None:
        """SIGKILL: no cleanup, no acknowledgements."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def terminate(self, timeout: float = 30.0) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()

    def log_tail(self, lines: int = 80) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def log_lines(self) -> list[dict[str, Any]]:
        out = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            with contextlib.suppress(json.JSONDecodeError):
                value = json.loads(line)
                if isinstance(value, dict):
                    out.append(value)
        return out

    def metrics(self) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
        with urllib.request.urlopen(f"{self.url}/metrics", timeout=5) as response:
            text = response.read().decode()
        samples = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
        return samples

    def counter(self, name: str, **labels: str) -> float:
        """Sum of the samples of name whose labels include labels (0 if none)."""
        wanted = set(labels.items())
        return sum(
            value
            for (sample, sample_labels), value in self.metrics().items()
            if sample == name and wanted <= sample_labels
        )

    def wait_counter(
        self, name: str, at_least: float, timeout: float = 20.0, **labels: str
    ) -> None:
        eventually(
            lambda: self.counter(name, **labels) >= at_least,
            timeout,
            f"{name}{labels} >= {at_least} (log:\n{self.log_tail(20)})",
        )

    def post(self, path: str, body: bytes, token: str | None) -> tuple[int, dict[str, Any]]:
        headers = {"Content-Type": "application/json"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        request = urllib.request.Request(f"{self.url}{path}", data=body, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read() or b"{}")


# --- a forwarding proxy that keeps what it forwarded ---------------------------------------


@dataclass
class RecordingProxy:
    """Forwards every POST to ``target`` and keeps the bodies, so a test can replay the real
    notifications a server sent. Answers with the upstream status (502 if it is down)."""

    target: str
    posts: list[tuple[str, bytes]] = field(default_factory=list)

    def __post_init__(self) -> None:
        proxy = self
        self._lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with proxy._lock:
                    proxy.posts.append((self.path, body))
                headers = {
                    k: v
                    for k, v in self.headers.items()
                    if k.lower() in ("authorization", "content-type")
                }
                request = urllib.request.Request(
                    proxy.target + self.path, data=body, headers=headers
                )
                try:
                    with urllib.request.urlopen(request, timeout=30) as response:
                        status, payload = response.status, response.read()
                except urllib.error.HTTPError as err:
                    status, payload = err.code, err.read()
                except OSError:
                    status, payload = 502, b'{"error": "watcher unreachable"}'
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def bodies(self) -> list[dict[str, Any]]:
        with self._lock:
            return [json.loads(body) for _, body in self.posts]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


# --- the API server ------------------------------------------------------------------------


@contextlib.contextmanager
def api_server_paused(kubeconfig: Path) -> Iterator[None]:
    """SIGSTOP the API server; always SIGCONT it again (the cluster is shared)."""
    state = ClusterState.load(kubeconfig.parent)
    if state is None or "kube-apiserver" not in state.pids:
        import pytest

        pytest.skip("the API server process of this cluster is not known (STEREO_TEST_KUBECONFIG)")
    pid = state.pids["kube-apiserver"]
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


def watcher_kubeconfig(api: client.ApiClient, kubeconfig: Path, path: Path) -> Path:
    """Apply rbac.yaml as shipped and write a kubeconfig with a token of its ServiceAccount."""
    core = client.CoreV1Api(api)
    with contextlib.suppress(client.ApiException):
        core.create_namespace({"metadata": {"name": WATCHER_NAMESPACE}})
    applied = subprocess.run(
        [
            str(Path(sys.executable).parent / "kubectl"),
            f"--kubeconfig={kubeconfig}",
            "apply",
            "--server-side",
            "--force-conflicts",
            "-f",
            str(RBAC_MANIFEST),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert applied.returncode == 0, applied.stderr
    token = eventually(lambda: _token(core), 30, f"a token for {WATCHER_NAMESPACE}/{WATCHER_SA}")
    admin = yaml.safe_load(kubeconfig.read_text())
    cluster = admin["clusters"][0]["cluster"]
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "local", "cluster": cluster}],
        "users": [{"name": WATCHER_SA, "user": {"token": token}}],
        "contexts": [{"name": "watcher", "context": {"cluster": "local", "user": WATCHER_SA}}],
        "current-context": "watcher",
    }
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    return path


def _token(core: client.CoreV1Api) -> str | None:
    try:
        response = core.create_namespaced_service_account_token(
            WATCHER_SA, WATCHER_NAMESPACE, {"spec": {"expirationSeconds": 7200}}
        )
    except client.ApiException as exc:
        if exc.status == 404:  # the ServiceAccount is not there yet
            return None
        raise
    return str(response.status.token)


# --- VideoJobs and Segments ----------------------------------------------------------------


def create_videojob(api: client.ApiClient, namespace: str, name: str) -> str:
    """A VideoJob (nothing reconciles it here); returns its UID."""
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "VideoJob",
        "metadata": {"name": name},
        "spec": {"source": "s3://films/in/movie.mp4", "format": "half-sbs"},
    }
    created = client.CustomObjectsApi(api).create_namespaced_custom_object(
        GROUP, VERSION, namespace, VIDEOJOB_PLURAL, body
    )
    return str(created["metadata"]["uid"])


def delete_videojob(api: client.ApiClient, namespace: str, name: str) -> None:
    client.CustomObjectsApi(api).delete_namespaced_custom_object(
        GROUP, VERSION, namespace, VIDEOJOB_PLURAL, name
    )


def output_uri(root: str, namespace: str, videojob: str, uid: str, index: int) -> str:
    return f"{root}/{namespace}/{videojob}/{uid}/segments/{index:05d}/output.mp4"


def create_segment(
    api: client.ApiClient, namespace: str, videojob: str, uid: str, index: int, output: str
) -> str:
    name = segment_name(videojob, index)
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Segment",
        "metadata": {"name": name},
        "spec": {
            "videoJob": videojob,
            "videoJobUid": uid,
            "index": index,
            "inputUri": output.replace("/output.mp4", "/input.mp4"),
            "outputUri": output,
            "startFrame": index * 48,
            "frameCount": 48,
            "startSeconds": index * 2.0,
            "durationSeconds": 2.0,
            "format": "half-sbs",
        },
    }
    client.CustomObjectsApi(api).create_namespaced_custom_object(
        GROUP, VERSION, namespace, SEGMENT_PLURAL, body
    )
    return name


def delete_segment(api: client.ApiClient, namespace: str, name: str) -> None:
    client.CustomObjectsApi(api).delete_namespaced_custom_object(
        GROUP, VERSION, namespace, SEGMENT_PLURAL, name
    )


def completion(api: client.ApiClient, namespace: str, name: str) -> dict[str, Any] | None:
    segment = client.CustomObjectsApi(api).get_namespaced_custom_object(
        GROUP, VERSION, namespace, SEGMENT_PLURAL, name
    )
    value = (segment.get("status") or {}).get("completion")
    return dict(value) if value else None


def wait_completion(
    api: client.ApiClient,
    namespace: str,
    name: str,
    timeout: float = 20.0,
    **expected: Any,
) -> dict[str, Any]:
    """The completion once it exists and has the expected fields."""

    def probe() -> dict[str, Any] | None:
        found = completion(api, namespace, name)
        if found and all(found.get(k) == v for k, v in expected.items()):
            return found
        return None

    return eventually(probe, timeout, f"completion {expected} on {namespace}/{name}")


__all__ = ["free_port"]
