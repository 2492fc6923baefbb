"""A real server run as a child process for tests: free ports, readiness, cleanup.

Each server gets its own temp directory (data, config files, and ``server.log``)
which is removed on stop unless STEREO_KEEP_SERVER_DIRS=1.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, ClassVar, Self

HOST = "127.0.0.1"


class ServerStartError(RuntimeError):
    """The server did not become ready; the message carries its log tail."""


class _PortClash(Exception):
    pass


def free_port(host: str = HOST) -> int:
    """A port nothing listens on right now (the server binds it moments later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def http_status(url: str, timeout: float = 1.0) -> int | None:
    """The HTTP status of a GET, or None when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return int(response.status)
    except urllib.error.HTTPError as err:
        return int(err.code)
    except (OSError, ValueError):
        return None


def find_executable(name: str, env_override: str | None = None) -> str | None:
    """``name`` from an override variable, the running venv's bin, or PATH."""
    if env_override and os.environ.get(env_override):
        return os.environ[env_override]
    search = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    return shutil.which(name, path=search)


class ManagedServer(ABC):
    """Start with ``start()`` or ``with``; ``stop()`` kills it and removes its files."""

    name: ClassVar[str] = "server"
    ready_timeout: float = 60.0
    stop_grace: float = 5.0

    def __init__(self, *, ready_timeout: float | None = None) -> None:
        if ready_timeout is not None:
            self.ready_timeout = ready_timeout
        self.tmpdir: Path | None = None
        self.process: subprocess.Popen[bytes] | None = None
        self.startup_seconds: float | None = None
        self._log: IO[bytes] | None = None

    # -- hooks for subclasses -------------------------------------------------

    @abstractmethod
    def _allocate_ports(self) -> None:
        """Choose fresh ports (called again if a port was taken meanwhile)."""

    @abstractmethod
    def _command(self) -> list[str]: ...

    @abstractmethod
    def _is_ready(self) -> bool: ...

    def _prepare(self) -> None:  # noqa: B027 - optional hook
        """Write config files into ``self.workdir`` before the process starts."""

    def _environment(self) -> Mapping[str, str]:
        return os.environ

    def _after_ready(self) -> None:  # noqa: B027 - optional hook
        """Set-up that needs the running server."""

    # -- lifecycle ------------------------------------------------------------

    @property
    def workdir(self) -> Path:
        if self.tmpdir is None:
            raise RuntimeError(f"{self.name} is not started")
        return self.tmpdir

    @property
    def log_path(self) -> Path:
        return self.workdir / "server.log"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> Self:
        if self.process is not None:
            raise RuntimeError(f"{self.name} already started")
        self.tmpdir = Path(tempfile.mkdtemp(prefix=f"stereo-{self.name}-"))
        atexit.register(self.stop)
        began = time.monotonic()
        try:
            for attempt in range(3):
                self._allocate_ports()
                self._prepare()
                self._spawn()
                try:
                    self._wait_ready()
                    break
                except _PortClash:
                    self._kill()
                    if attempt == 2:
                        raise ServerStartError(self._failure("ports kept clashing")) from None
            self._after_ready()
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - began
        return self

    def _spawn(self) -> None:
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - lives as long as the process
        self.process = subprocess.Popen(
            self._command(),
            cwd=self.workdir,
            env=dict(self._environment()),
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            # Own process group, so stop() also reaches any children it forks.
            start_new_session=True,
        )

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.ready_timeout
        assert self.process is not None
        while True:
            if self.process.poll() is not None:
                if "address already in use" in self.log_tail().lower():
                    raise _PortClash
                raise ServerStartError(
                    self._failure(f"exited with status {self.process.returncode}")
                )
            with contextlib.suppress(Exception):
                if self._is_ready():
                    return
            if time.monotonic() > deadline:
                raise ServerStartError(self._failure(f"not ready after {self.ready_timeout:.0f}s"))
            time.sleep(0.05)

    def _failure(self, what: str) -> str:
        return f"{self.name} {what}; log {self.log_path}:\n{self.log_tail()}"

    def log_tail(self, lines: int = 60) -> str:
        if self.tmpdir is None or not self.log_path.exists():
            return ""
        text = self.log_path.read_bytes()[-64 * 1024 :].decode("utf-8", "replace")
        return "\n".join(text.splitlines()[-lines:])

    def _kill(self) -> None:
        proc, self.process = self.process, None
        if proc is not None and proc.poll() is None:
            for sig, wait in ((signal.SIGTERM, self.stop_grace), (signal.SIGKILL, 5.0)):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, sig)
                try:
                    proc.wait(timeout=wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
        if self._log is not None:
            self._log.close()
            self._log = None

    def stop(self) -> None:
        self._kill()
        atexit.unregister(self.stop)
        tmpdir, self.tmpdir = self.tmpdir, None
        if tmpdir is not None and os.environ.get("STEREO_KEEP_SERVER_DIRS") != "1":
            shutil.rmtree(tmpdir, ignore_errors=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def wait_for(
    predicate: Callable[[], bool], timeout: float, what: str, interval: float = 0.05
) -> None:
    """Poll ``predicate`` until true; AssertionError naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)
