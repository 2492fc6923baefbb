"""`kubectl logs` on the local cluster: the API server calls the node agent's kubelet API,
which serves each container instance's stdout and stderr."""

from __future__ import annotations

import os
import ssl
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from tests.integration.kube import eventually

KUBECTL = str(Path(sys.executable).parent / "kubectl")


def _kubectl(kubeconfig: Path, *args: str, timeout: float = 60) -> str:
    result = subprocess.run(
        [KUBECTL, f"--kubeconfig={kubeconfig}", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "NO_PROXY": "127.0.0.1", "no_proxy": "127.0.0.1"},
    )
    assert result.returncode == 0, f"kubectl {' '.join(args)}: {result.stderr}"
    return result.stdout


def _pod(name: str, script: str, **spec: Any) -> dict[str, Any]:
    container = {"name": "main", "image": "local", "command": ["sh", "-c", script]}
    return {
        "metadata": {"name": name},
        "spec": {
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 1,
            "containers": [container],
            **spec,
        },
    }


def _phase(core: client.CoreV1Api, ns: str, name: str) -> str:
    return str(core.read_namespaced_pod(name, ns).status.phase)


def _restarts(core: client.CoreV1Api, ns: str, name: str) -> int:
    statuses = core.read_namespaced_pod(name, ns).status.container_statuses or []
    return statuses[0].restart_count if statuses else 0


def test_kubectl_logs_returns_stdout_and_stderr_with_tail_and_timestamps(
    kubeconfig: Path, api: client.ApiClient, namespace: str
) -> None:
    core = client.CoreV1Api(api)
    # stdout and stderr are two pipes, read as they come: the pauses order the lines.
    script = "for i in 1 2 3 4 5; do echo out-$i; done; sleep 1; echo oops >&2; sleep 1; "
    script += "printf 'no-newline'"
    core.create_namespaced_pod(namespace, _pod("printer", script))
    eventually(lambda: _phase(core, namespace, "printer") == "Succeeded", 60, "pod Succeeded")

    full = _kubectl(kubeconfig, "logs", "-n", namespace, "printer").splitlines()
    assert full == [*(f"out-{i}" for i in range(1, 6)), "oops", "no-newline"]

    tail = _kubectl(kubeconfig, "logs", "-n", namespace, "printer", "--tail=2").splitlines()
    assert tail == full[-2:]

    stamped = _kubectl(kubeconfig, "logs", "-n", namespace, "printer", "--timestamps")
    first_time, first_text = stamped.splitlines()[0].split(" ", 1)
    assert first_text == "out-1"
    assert first_time.endswith("Z") and len(first_time) == len("2026-01-01T00:00:00.000000000Z")

    # The Python client (as stereoctl uses it) goes the same way.
    assert core.read_namespaced_pod_log("printer", namespace, tail_lines=1) == "no-newline\n"
    limited = core.read_namespaced_pod_log("printer", namespace, limit_bytes=7)
    assert limited == "out-1\no"


def test_kubectl_logs_follow_streams_until_the_container_exits(
    kubeconfig: Path, api: client.ApiClient, namespace: str
) -> None:
    core = client.CoreV1Api(api)
    script = "echo first; sleep 2; for i in 1 2 3; do echo tick-$i; sleep 0.3; done"
    core.create_namespaced_pod(namespace, _pod("ticker", script))
    eventually(lambda: _phase(core, namespace, "ticker") == "Running", 60, "pod Running")
    # Started while the container still runs: it returns once the container has exited.
    out = _kubectl(kubeconfig, "logs", "-f", "-n", namespace, "ticker", timeout=60)
    assert out.splitlines() == ["first", "tick-1", "tick-2", "tick-3"]


def test_previous_serves_the_last_instance_before_a_restart(
    kubeconfig: Path, api: client.ApiClient, namespace: str
) -> None:
    core = client.CoreV1Api(api)
    # The first run fails, the restarted one stays up: an emptyDir outlives restarts.
    script = "if [ -f /work/ran ]; then echo second-run; exec sleep 60; fi; "
    script += "touch /work/ran; echo first-run; exit 3"
    pod = _pod(
        "restarter",
        script,
        restartPolicy="OnFailure",
        volumes=[{"name": "work", "emptyDir": {}}],
    )
    pod["spec"]["containers"][0]["volumeMounts"] = [{"name": "work", "mountPath": "/work"}]
    core.create_namespaced_pod(namespace, pod)

    def current() -> str | None:
        if _restarts(core, namespace, "restarter") < 1:
            return None
        text = _kubectl(kubeconfig, "logs", "-n", namespace, "restarter")
        return text if "second-run" in text else None

    assert eventually(current, 60, "the restarted container's log") == "second-run\n"
    previous = _kubectl(kubeconfig, "logs", "-n", namespace, "restarter", "--previous")
    assert previous == "first-run\n"


def test_no_previous_instance_is_a_clear_error(
    kubeconfig: Path, api: client.ApiClient, namespace: str
) -> None:
    core = client.CoreV1Api(api)
    core.create_namespaced_pod(namespace, _pod("once", "echo hi"))
    eventually(lambda: _phase(core, namespace, "once") == "Succeeded", 60, "pod Succeeded")
    result = subprocess.run(
        [KUBECTL, f"--kubeconfig={kubeconfig}", "logs", "-n", namespace, "once", "--previous"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert f"previous terminated container 'main' in pod {namespace}/once not found" in (
        result.stderr
    )


def _kubelet_port(core: client.CoreV1Api) -> int:
    node = core.list_node().items[0]
    return int(node.status.daemon_endpoints.kubelet_endpoint.port)


def _kubelet_get(port: int, path: str, pki: Path, user: str | None) -> tuple[int, str]:
    context = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    if user is not None:
        context.load_cert_chain(pki / f"{user}.crt", pki / f"{user}.key")
    opener = urllib.request.build_opener(
        urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=context)
    )
    try:
        with opener.open(f"https://127.0.0.1:{port}{path}", timeout=10) as response:
            return int(response.status), response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_kubelet_api_authenticates_and_authorizes_its_callers(
    kubeconfig: Path, api: client.ApiClient, namespace: str
) -> None:
    core = client.CoreV1Api(api)
    core.create_namespaced_pod(namespace, _pod("secret-talk", "echo classified"))
    eventually(lambda: _phase(core, namespace, "secret-talk") == "Succeeded", 60, "Succeeded")
    port, pki = _kubelet_port(core), kubeconfig.parent / "pki"
    path = f"/containerLogs/{namespace}/secret-talk/main"

    # The API server's own identity, and an admin, may read logs.
    assert _kubelet_get(port, path, pki, "apiserver-kubelet-client") == (200, "classified\n")
    assert _kubelet_get(port, path, pki, "admin") == (200, "classified\n")
    # The scheduler is authenticated but has no nodes/proxy permission.
    status, body = _kubelet_get(port, path, pki, "scheduler")
    assert status == 403 and "system:kube-scheduler" in body
    # No client certificate: the handshake itself is refused.
    with pytest.raises((ssl.SSLError, urllib.error.URLError, ConnectionError)):
        _kubelet_get(port, path, pki, None)
    # Bad queries and unknown containers are named in the error.
    status, body = _kubelet_get(port, path + "?tailLines=many", pki, "admin")
    assert (status, body) == (400, "tailLines='many' is not a non-negative integer")
    status, body = _kubelet_get(port, f"/containerLogs/{namespace}/nope/main", pki, "admin")
    assert (status, body) == (404, f"pod {namespace}/nope is not on this node")
