"""Startup, liveness and readiness probes, run the way the kubelet's prober runs them.

Each probe of a container runs in its own thread from the container's start: startup first
(liveness and readiness wait for it), each after initialDelaySeconds, every periodSeconds,
with timeoutSeconds per attempt and the success/failure thresholds counted on consecutive
results. httpGet and tcpSocket go to the pod IP from the host; exec runs inside the
container's network, mount and UTS namespaces. The runner reads the outcome: `ready`, and
`failure` once a liveness or startup probe gave up (then the container is killed).
"""

from __future__ import annotations

import http.client
import os
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from stereo_cluster.binaries import KUBERNETES_VERSION

KINDS = {"startup": "startupProbe", "liveness": "livenessProbe", "readiness": "readinessProbe"}
_BODY_LIMIT = 10 * 1024


@dataclass(frozen=True)
class ProbeSpec:
    kind: str
    handler: dict[str, Any]
    initial_delay: float
    period: float
    timeout: float
    success_threshold: int
    failure_threshold: int

    @classmethod
    def parse(cls, kind: str, doc: Mapping[str, Any]) -> ProbeSpec:
        handler = {k: v for k, v in doc.items() if k in ("httpGet", "tcpSocket", "exec", "grpc")}
        return cls(
            kind=kind,
            handler=handler,
            initial_delay=float(doc.get("initialDelaySeconds", 0)),
            period=float(doc.get("periodSeconds", 10)),
            timeout=float(doc.get("timeoutSeconds", 1)),
            success_threshold=int(doc.get("successThreshold", 1)),
            failure_threshold=int(doc.get("failureThreshold", 3)),
        )


@dataclass(frozen=True)
class ProbeTarget:
    """Where a container's probes go: its pod IP, its named ports, its process and env."""

    pod_ip: str
    ports: dict[str, int]
    pid: int
    env: dict[str, str]

    def port(self, value: int | str) -> int:
        if isinstance(value, int) or value.isdigit():
            return int(value)
        if value not in self.ports:
            raise ValueError(f"the container has no port named {value!r}")
        return self.ports[value]


def check(handler: Mapping[str, Any], target: ProbeTarget, timeout: float) -> tuple[bool, str]:
    """One probe attempt: (succeeded, what happened)."""
    try:
        if "httpGet" in handler:
            return _http_get(handler["httpGet"], target, timeout)
        if "tcpSocket" in handler:
            spec = handler["tcpSocket"]
            host, port = spec.get("host") or target.pod_ip, target.port(spec["port"])
            with socket.create_connection((host, port), timeout=timeout):
                return True, f"connected to {host}:{port}"
        if "exec" in handler:
            return _exec(handler["exec"].get("command", []), target, timeout)
    except (OSError, ValueError, http.client.HTTPException) as exc:
        return False, str(exc) or type(exc).__name__
    return False, f"probe handler {sorted(handler)} is not supported by the local node agent"


def _http_get(spec: Mapping[str, Any], target: ProbeTarget, timeout: float) -> tuple[bool, str]:
    host, port = spec.get("host") or target.pod_ip, target.port(spec["port"])
    conn: http.client.HTTPConnection
    if spec.get("scheme", "HTTP").upper() == "HTTPS":
        # As the kubelet does: HTTPS probes do not verify the certificate.
        context = ssl.create_default_context()
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
        conn = http.client.HTTPSConnection(host, port, timeout=timeout, context=context)
    else:
        conn = http.client.HTTPConnection(host, port, timeout=timeout)
    headers = {"User-Agent": f"kube-probe/{KUBERNETES_VERSION}", "Accept": "*/*"}
    headers.update({h["name"]: h["value"] for h in spec.get("httpHeaders") or []})
    try:
        conn.request("GET", spec.get("path") or "/", headers=headers)
        response = conn.getresponse()
        response.read(_BODY_LIMIT)
    finally:
        conn.close()
    return 200 <= response.status < 400, f"HTTP {response.status}"


def _exec(command: list[str], target: ProbeTarget, timeout: float) -> tuple[bool, str]:
    if os.geteuid() == 0 and shutil.which("nsenter"):
        enter = ["--net", "--mount", "--uts"]
        command = ["nsenter", f"--target={target.pid}", *enter, "--", *command]
    try:
        done = subprocess.run(
            command, env=target.env, capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL
        )
    except subprocess.TimeoutExpired:
        return False, f"command timed out after {timeout:g}s"
    output = (done.stdout + done.stderr).decode(errors="replace").strip()[-200:]
    return done.returncode == 0, f"exit code {done.returncode}: {output}".rstrip(": ")


class ContainerProbes:
    """The probes of one run of one container (a restarted container gets new ones)."""

    def __init__(
        self, container: Mapping[str, Any], target: ProbeTarget, on_change: Callable[[], None]
    ) -> None:
        self.specs = [
            ProbeSpec.parse(k, container[f]) for k, f in KINDS.items() if container.get(f)
        ]
        kinds = {s.kind for s in self.specs}
        self.target = target
        self.on_change = on_change
        self.started = threading.Event()
        if "startup" not in kinds:
            self.started.set()
        self._ready = "readiness" not in kinds
        self.failure: str | None = None
        self.failed_kind: str | None = None  # the liveness or startup probe that gave up
        self._stop = threading.Event()
        self._began = time.monotonic()

    @property
    def ready(self) -> bool:
        return self.started.is_set() and self._ready and self.failure is None

    def start(self) -> None:
        for spec in self.specs:
            threading.Thread(target=self._run, args=(spec,), daemon=True).start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self, spec: ProbeSpec) -> None:
        if spec.kind != "startup":
            while not self.started.wait(0.2):
                if self._stop.is_set():
                    return
        delay = self._began + spec.initial_delay - time.monotonic()
        if delay > 0 and self._stop.wait(delay):
            return
        successes = failures = 0
        while not self._stop.is_set():
            ok, message = check(spec.handler, self.target, spec.timeout)
            if self._stop.is_set():
                return
            successes, failures = (successes + 1, 0) if ok else (0, failures + 1)
            if not self._record(spec, ok, successes, failures, message):
                return
            if self._stop.wait(spec.period):
                return

    def _record(self, spec: ProbeSpec, ok: bool, successes: int, failures: int, msg: str) -> bool:
        """Apply one result; False when this probe has nothing more to do."""
        if spec.kind == "readiness":
            if ok and successes >= spec.success_threshold and not self._ready:
                self._ready = True
                self.on_change()
            elif not ok and failures >= spec.failure_threshold and self._ready:
                self._ready = False
                self.on_change()
            return True
        if spec.kind == "startup" and ok:
            self.started.set()
            self.on_change()
            return False
        if not ok and failures >= spec.failure_threshold:
            self.failed_kind = spec.kind
            self.failure = f"{spec.kind.capitalize()} probe failed: {msg}"
            self.on_change()
            return False
        return True
