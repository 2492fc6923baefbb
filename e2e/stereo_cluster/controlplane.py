"""Start and stop a real local Kubernetes control plane on loopback.

etcd, kube-apiserver (client-certificate authentication, service-account tokens, Node and
RBAC authorization, an audit log), kube-controller-manager and kube-scheduler run as child
processes in their own sessions, so `stereo-cluster up` can return and `down` (from any
process) can find them again through the state file.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from stereo_cluster import cidrs, kubeconfig, pki
from stereo_cluster.binaries import KUBERNETES_VERSION, Binaries, ensure_binaries
from stereo_cluster.nodeagent import network

STATE_FILE = "cluster.json"

# Who the audit log records: the system components' own traffic would drown the rest.
_AUDIT_POLICY = """\
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  - level: None
    users: [system:kube-controller-manager, system:kube-scheduler, system:apiserver]
  - level: None
    userGroups: [system:nodes]
  - level: Metadata
"""

# Who the API server is when it calls a node's kubelet API (`kubectl logs`), and the
# built-in role that lets it: node agents check both, as a kubelet does.
KUBELET_CLIENT_USER = "kube-apiserver-kubelet-client"
_KUBELET_CLIENT_BINDING: dict[str, Any] = {
    "apiVersion": "rbac.authorization.k8s.io/v1",
    "kind": "ClusterRoleBinding",
    "metadata": {"name": "stereo:kube-apiserver-kubelet-client"},
    "roleRef": {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": "system:kubelet-api-admin",
    },
    "subjects": [
        {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": KUBELET_CLIENT_USER}
    ],
}


class ControlPlaneError(RuntimeError):
    """The control plane did not come up; the message names the component and its log."""


@dataclass
class ClusterState:
    """What `down` and the test fixtures need to find a running cluster again."""

    state_dir: str
    api_port: int
    etcd_port: int
    kubeconfig: str
    version: str = KUBERNETES_VERSION
    pids: dict[str, int] = field(default_factory=dict)
    # This cluster's own ranges on the machine (cidrs.py); empty in older state files.
    pod_cidr: str = ""
    service_cidr: str = ""

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.api_port}"

    @property
    def cidrs(self) -> cidrs.ClusterCidrs | None:
        if not self.pod_cidr:
            return None
        return cidrs.ClusterCidrs(pods=self.pod_cidr, services=self.service_cidr)

    def save(self) -> None:
        (Path(self.state_dir) / STATE_FILE).write_text(json.dumps(asdict(self), indent=2))

    @classmethod
    def load(cls, state_dir: Path) -> ClusterState | None:
        path = state_dir / STATE_FILE
        if not path.is_file():
            return None
        return cls(**json.loads(path.read_text()))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(check: Callable[[], bool], timeout: float, what: str, interval: float = 0.2) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(interval)
    raise ControlPlaneError(f"timed out after {timeout:.0f}s waiting for {what}")


class LocalControlPlane:
    """One etcd, API server, controller manager and scheduler under `state_dir`."""

    def __init__(self, state_dir: Path, binaries: Binaries | None = None) -> None:
        self.state_dir = state_dir.resolve()
        self.pki_dir = self.state_dir / "pki"
        self.log_dir = self.state_dir / "logs"
        self._binaries = binaries
        self.state: ClusterState | None = ClusterState.load(self.state_dir)

    @property
    def binaries(self) -> Binaries:
        if self._binaries is None:
            self._binaries = ensure_binaries()
        return self._binaries

    # --- start -------------------------------------------------------------------------

    def start(self, timeout: float = 120.0) -> ClusterState:
        if self.state is not None and self.is_healthy():
            return self.state
        self.stop()
        for d in (self.pki_dir, self.log_dir):
            d.mkdir(parents=True, exist_ok=True)
        binaries = self.binaries
        try:
            ranges = cidrs.claim(self.state_dir)
        except cidrs.CidrError as exc:
            raise ControlPlaneError(str(exc)) from None
        self.state = ClusterState(
            state_dir=str(self.state_dir),
            api_port=free_port(),
            etcd_port=free_port(),
            kubeconfig=str(self.state_dir / "admin.kubeconfig"),
            pod_cidr=ranges.pods,
            service_cidr=ranges.services,
        )
        self.state.save()
        try:
            ca = pki.CertificateAuthority.create(self.pki_dir)
            self._write_kubeconfigs(ca)
            self._start_etcd(binaries)
            self._start_apiserver(binaries, ca)
            self._start_controller_manager(binaries, ca)
            self._start_scheduler(binaries)
            self._wait_for_controllers(timeout)
        except BaseException:
            self.stop()
            raise
        return self.state

    def _write_kubeconfigs(self, ca: pki.CertificateAuthority) -> None:
        assert self.state is not None
        users = {
            "admin": ("kubernetes-admin", "system:masters"),
            "controller-manager": ("system:kube-controller-manager", None),
            "scheduler": ("system:kube-scheduler", None),
        }
        for stem, (user, group) in users.items():
            pair = ca.client(stem, user, group)
            kubeconfig.write(
                self.state_dir / f"{stem}.kubeconfig", self.state.server, ca.cert, pair
            )

    def node_kubeconfig(self, node_name: str) -> Path:
        """A kubeconfig with the node's own identity, as a kubelet would have."""
        assert self.state is not None
        ca = pki.CertificateAuthority.load(self.pki_dir)
        pair = ca.client(f"node-{node_name}", f"system:node:{node_name}", "system:nodes")
        path = self.state_dir / f"node-{node_name}.kubeconfig"
        kubeconfig.write(path, self.state.server, ca.cert, pair)
        return path

    def node_serving_args(self, node_name: str) -> list[str]:
        """The node agent's flags for its kubelet API: a serving certificate and the CA
        that the API server's client certificate must chain to."""
        ca = pki.CertificateAuthority.load(self.pki_dir)
        pair = ca.node_serving(f"node-{node_name}-serving", node_name)
        return [
            f"--serving-cert={pair.cert}",
            f"--serving-key={pair.key}",
            f"--client-ca={ca.cert}",
        ]

    def proxy_kubeconfig(self) -> Path:
        """kube-proxy's identity (bound to system:node-proxier), for the Service proxy."""
        assert self.state is not None
        ca = pki.CertificateAuthority.load(self.pki_dir)
        pair = ca.client("kube-proxy", "system:kube-proxy")
        path = self.state_dir / "kube-proxy.kubeconfig"
        kubeconfig.write(path, self.state.server, ca.cert, pair)
        return path

    def _spawn(self, name: str, argv: list[str]) -> None:
        self.add_process(name, argv)

    def _start_etcd(self, binaries: Binaries) -> None:
        assert self.state is not None
        peer = free_port()
        client_url = f"http://127.0.0.1:{self.state.etcd_port}"
        self._spawn(
            "etcd",
            [
                str(binaries.etcd),
                "--name=local",
                f"--data-dir={self.state_dir / 'etcd'}",
                f"--listen-client-urls={client_url}",
                f"--advertise-client-urls={client_url}",
                f"--listen-peer-urls=http://127.0.0.1:{peer}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{peer}",
                f"--initial-cluster=local=http://127.0.0.1:{peer}",
                # Test data is disposable: skipping fsync makes etcd an order of magnitude faster.
                "--unsafe-no-fsync",
                "--log-level=warn",
            ],
        )
        wait_until(lambda: _http_ok(f"{client_url}/health"), 30, self._what("etcd"))

    def _start_apiserver(self, binaries: Binaries, ca: pki.CertificateAuthority) -> None:
        assert self.state is not None
        serving = ca.serving("apiserver", cidrs.first_ip(self.state.service_cidr))
        sa = pki.service_account_keys(self.pki_dir)
        kubelet_client = ca.client("apiserver-kubelet-client", KUBELET_CLIENT_USER)
        policy = self.state_dir / "audit-policy.yaml"
        policy.write_text(_AUDIT_POLICY)
        self._spawn(
            "kube-apiserver",
            [
                str(binaries.kube_apiserver),
                f"--etcd-servers=http://127.0.0.1:{self.state.etcd_port}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={self.state.api_port}",
                f"--tls-cert-file={serving.cert}",
                f"--tls-private-key-file={serving.key}",
                f"--client-ca-file={ca.cert}",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-account-key-file={sa.cert}",
                f"--service-account-signing-key-file={sa.key}",
                f"--service-cluster-ip-range={self.state.service_cidr}",
                "--authorization-mode=Node,RBAC",
                "--enable-admission-plugins=NodeRestriction",
                # `kubectl logs` goes through the node's kubelet API (the node agent's).
                f"--kubelet-client-certificate={kubelet_client.cert}",
                f"--kubelet-client-key={kubelet_client.key}",
                f"--kubelet-certificate-authority={ca.cert}",
                "--kubelet-preferred-address-types=InternalIP",
                # A loopback address cannot back the `kubernetes` Service's endpoints.
                "--endpoint-reconciler-type=none",
                f"--audit-policy-file={policy}",
                f"--audit-log-path={self.log_dir / 'audit.log'}",
                "--audit-log-maxsize=200",
                "--audit-log-maxbackup=2",
                "--profiling=false",
                "--v=1",
            ],
        )
        wait_until(lambda: self._api_ok("/readyz"), 90, self._what("kube-apiserver"))
        self._api_create(
            "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings", _KUBELET_CLIENT_BINDING
        )

    def _start_controller_manager(self, binaries: Binaries, ca: pki.CertificateAuthority) -> None:
        conf = self.state_dir / "controller-manager.kubeconfig"
        self._spawn(
            "kube-controller-manager",
            [
                str(binaries.kube_controller_manager),
                f"--kubeconfig={conf}",
                f"--authentication-kubeconfig={conf}",
                f"--authorization-kubeconfig={conf}",
                "--bind-address=127.0.0.1",
                f"--secure-port={free_port()}",
                "--leader-elect=false",
                "--cluster-name=stereo-local",
                f"--root-ca-file={ca.cert}",
                f"--service-account-private-key-file={self.pki_dir / 'sa.key'}",
                # Each controller acts as its own service account with its own bootstrap role.
                "--use-service-account-credentials=true",
                "--controllers=*",
                # The default client rate (20/s, burst 30) paces the Job controller at about
                # 3 Jobs/s, far below what a VideoJob of thousands of segments needs.
                "--kube-api-qps=200",
                "--kube-api-burst=400",
                "--concurrent-job-syncs=10",
                "--profiling=false",
                "--v=1",
            ],
        )

    def _start_scheduler(self, binaries: Binaries) -> None:
        conf = self.state_dir / "scheduler.kubeconfig"
        self._spawn(
            "kube-scheduler",
            [
                str(binaries.kube_scheduler),
                f"--kubeconfig={conf}",
                f"--authentication-kubeconfig={conf}",
                f"--authorization-kubeconfig={conf}",
                "--bind-address=127.0.0.1",
                f"--secure-port={free_port()}",
                "--leader-elect=false",
                "--profiling=false",
                "--v=1",
            ],
        )

    def _wait_for_controllers(self, timeout: float) -> None:
        # The service-account controller creating `default` proves the controller manager
        # is running its loops; pods cannot be admitted before that account exists anyway.
        wait_until(
            lambda: self._api_ok("/api/v1/namespaces/default/serviceaccounts/default"),
            timeout,
            self._what("kube-controller-manager"),
        )

    def _what(self, component: str) -> str:
        return f"{component} (log: {self.log_dir / (component + '.log')})"

    # --- health ------------------------------------------------------------------------

    def _ssl_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.pki_dir / "ca.crt"))
        ctx.load_cert_chain(self.pki_dir / "admin.crt", self.pki_dir / "admin.key")
        return ctx

    def _api_ok(self, path: str) -> bool:
        assert self.state is not None
        return _http_ok(self.state.server + path, self._ssl_context())

    def _api_create(self, path: str, body: dict[str, Any]) -> None:
        """POST an object as the admin; one that exists already is left as it is."""
        assert self.state is not None
        request = urllib.request.Request(
            self.state.server + path,
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=10, context=self._ssl_context()):
                pass
        except urllib.error.HTTPError as exc:
            if exc.code != 409:
                raise ControlPlaneError(f"creating {path}: HTTP {exc.code} {exc.reason}") from None

    def is_healthy(self) -> bool:
        if self.state is None:
            return False
        alive = all(_pid_alive(pid) for pid in self.state.pids.values())
        return alive and self._api_ok("/readyz")

    # --- stop --------------------------------------------------------------------------

    def stop(self, grace: float = 10.0) -> None:
        """Stop every process this cluster started (nodes included) and remove its state."""
        state = self.state or ClusterState.load(self.state_dir)
        if state is not None:
            # Reverse start order: nodes and controllers before the API server, etcd last.
            for pid in reversed(list(state.pids.values())):
                _terminate(pid, grace)
            if state.cidrs is not None:
                # The node agents clean up after themselves; this catches a killed one.
                if network.unavailable_reason() is None:
                    network.remove_cluster_leftovers(state.pod_cidr, state.service_cidr)
                cidrs.release(state.cidrs, self.state_dir)
        if self.state_dir.exists():
            shutil.rmtree(self.state_dir, ignore_errors=True)
        self.state = None

    def add_process(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> int:
        """Run another long-lived process (a node agent) under this cluster's lifecycle."""
        assert self.state is not None
        log = open(self.log_dir / f"{name}.log", "ab")  # noqa: SIM115 - handed to the child
        proc = subprocess.Popen(
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            cwd=self.state_dir,
            env={**os.environ, **(env or {})},
        )
        log.close()
        self.state.pids[name] = proc.pid
        self.state.save()
        return proc.pid


def _http_ok(url: str, context: ssl.SSLContext | None = None) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2, context=context) as resp:
            return bool(resp.status == 200)
    except (urllib.error.URLError, ConnectionError, TimeoutError, ssl.SSLError):
        return False


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _terminate(pid: int, grace: float) -> None:
    """SIGTERM the process group, then SIGKILL what is left after `grace` seconds."""
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and _pid_alive(pid):
        _reap(pid)
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
    _reap(pid)


def _reap(pid: int) -> None:
    # Children of this very process would otherwise linger as zombies and look alive.
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
