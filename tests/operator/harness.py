"""Running the operator against the local cluster in integration tests.

The operator runs as a subprocess (so a test can SIGKILL and restart it), with its own client
certificate (user `stereo-operator`, bound to the ClusterRole in the package's rbac.yaml, so
the audit log tells its requests apart), scoped to the test's namespace (operators of
different tests never meet), on a file:// workspace, with `fault_infer.py` as the Jobs'
command so a test can make attempts fail, hang or write nothing.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from stereo_cluster import kubeconfig as kubeconfig_files
from stereo_cluster.controlplane import ClusterState
from stereo_cluster.pki import CertificateAuthority
from tests.integration.kube import eventually

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "operator" / "stereo_operator"
BIN = Path(sys.executable).parent
KUBECTL = str(BIN / "kubectl")
FAULT_INFER = Path(__file__).with_name("fault_infer.py")
OPERATOR_USER = "stereo-operator"
GROUP, VERSION = "stereo.dev", "v1alpha1"

T = TypeVar("T")


def kubectl(kubeconfig: Path, *args: str, stdin: str | None = None) -> str:
    result = subprocess.run(
        [KUBECTL, f"--kubeconfig={kubeconfig}", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


@dataclass(frozen=True)
class ClusterAccess:
    admin: Path
    operator: Path
    """A kubeconfig for user stereo-operator."""
    audit_log: Path


def issue_kubeconfig(admin: Path, user: str) -> Path:
    """A kubeconfig with a client certificate for `user` (no RBAC of its own)."""
    state_dir = admin.parent
    state = ClusterState.load(state_dir)
    assert state is not None, f"no cluster state in {state_dir}"
    ca = CertificateAuthority.load(state_dir / "pki")
    pair = ca.client(f"{user}-tests", user)
    path = state_dir / f"{user}.kubeconfig"
    kubeconfig_files.write(path, state.server, ca.cert, pair)
    return path


def _wait_established(api: client.ApiClient, names: list[str]) -> None:
    ext = client.ApiextensionsV1Api(api)

    def established() -> bool:
        for name in names:
            conds = ext.read_custom_resource_definition(name).status.conditions or []
            if not any(c.type == "Established" and c.status == "True" for c in conds):
                return False
        return True

    wait_for(established, 30, "the CRDs to be Established")


def setup_cluster(admin: Path, api: client.ApiClient) -> ClusterAccess:
    """CRDs (ours and kopf's peering), the operator's identity and its RBAC."""
    kubectl(admin, "apply", "--server-side", "--force-conflicts", "-f", str(ROOT / "crds"))
    kubectl(
        admin,
        "apply",
        "--server-side",
        "--force-conflicts",
        "-f",
        str(PACKAGE / "manifests" / "kopf-peering.yaml"),
    )
    kubectl(
        admin,
        "apply",
        "--server-side",
        "--force-conflicts",
        "-f",
        str(PACKAGE / "manifests" / "rbac.yaml"),
    )
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": "stereo-operator-tests"},
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": "stereo-operator",
        },
        "subjects": [
            {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": OPERATOR_USER}
        ],
    }
    kubectl(
        admin,
        "apply",
        "--server-side",
        "--force-conflicts",
        "-f",
        "-",
        stdin=yaml.safe_dump(binding),
    )
    _wait_established(
        api,
        [
            "videojobs.stereo.dev",
            "segments.stereo.dev",
            "kopfpeerings.kopf.dev",
            "clusterkopfpeerings.kopf.dev",
        ],
    )
    return ClusterAccess(
        admin, issue_kubeconfig(admin, OPERATOR_USER), admin.parent / "logs" / "audit.log"
    )


wait_for = eventually


# ---------------------------------------------------------------------------------------------
# The operator process


class OperatorProcess:
    def __init__(
        self,
        kubeconfig: Path,
        config: Path,
        log: Path,
        args: list[str],
        env: dict[str, str] | None = None,
    ) -> None:
        self.argv = [
            sys.executable,
            "-m",
            "stereo_operator",
            f"--kubeconfig={kubeconfig}",
            f"--config={config}",
            "--log-format=text",
            *args,
        ]
        self.log = log
        self.env = env or {}
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> OperatorProcess:
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **self.env}
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                self.argv, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT
            )
        return self

    def kill(self) -> None:
        """SIGKILL: no cleanup, no goodbye to peers; as a crash or an OOM kill."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def tail(self, lines: int = 60) -> str:
        if not self.log.exists():
            return ""
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


# ---------------------------------------------------------------------------------------------
# One test's world: a namespace, a workspace, an operator


@dataclass
class Harness:
    access: ClusterAccess
    api: client.ApiClient
    namespace: str
    tmp: Path
    operators: list[OperatorProcess] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def workspace(self) -> Path:
        return self.tmp / "ws"

    @property
    def faults(self) -> Path:
        return self.tmp / "faults"

    @property
    def custom(self) -> client.CustomObjectsApi:
        return client.CustomObjectsApi(self.api)

    @property
    def batch(self) -> client.BatchV1Api:
        return client.BatchV1Api(self.api)

    def write_config(self, **overrides: Any) -> Path:
        env = [{"name": "STEREO_TEST_FAULTS", "value": str(self.faults)}]
        template = {
            "command": [sys.executable, str(FAULT_INFER)],
            "gpus": 0,
            "tolerations": [],
            "env": env,
            "ttlSecondsAfterFinished": 600,
        }
        config = {
            "workspace": self.workspace.as_uri(),
            "maxInflight": 8,
            "reconcileSeconds": 1,
            "inference": template,
            "media": template,
            **overrides,
        }
        self.config = config
        path = self.tmp / "operator.yaml"
        path.write_text(yaml.safe_dump(config))
        return path

    def start_operator(self, *args: str, **config: Any) -> OperatorProcess:
        path = (
            self.write_config(**config) if config or not self.config else self.tmp / "operator.yaml"
        )
        scope = [f"--namespace={self.namespace}"]
        extra = list(args) or ["--standalone"]
        log = self.tmp / f"operator-{len(self.operators)}.log"
        proc = OperatorProcess(self.access.operator, path, log, scope + extra).start()
        self.operators.append(proc)
        return proc

    def logs(self) -> str:
        return "".join(f"\n--- {p.log.name} ---\n{p.tail()}" for p in self.operators)

    def wait(self, probe: Callable[[], T | None], timeout: float, what: str) -> T:
        return wait_for(probe, timeout, what, self.logs)

    # -- VideoJobs ---------------------------------------------------------------------------

    def set_faults(self, videojob: str, rules: dict[str, Any]) -> None:
        path = self.faults / self.namespace / f"{videojob}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(rules))

    def create_videojob(self, name: str, source: Path | str, **spec: Any) -> dict[str, Any]:
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "VideoJob",
            "metadata": {"name": name},
            "spec": {
                "source": source.as_uri() if isinstance(source, Path) else source,
                "format": "half-sbs",
                "segmentSeconds": 1,
                "parallelism": 2,
                "backoffSeconds": 1,
                "backend": {"type": "stub", "engine": "copy"},
                "timeouts": {"completionGraceSeconds": 0},
                **spec,
            },
        }
        created: dict[str, Any] = self.custom.create_namespaced_custom_object(
            GROUP, VERSION, self.namespace, "videojobs", body
        )
        return created

    def videojob(self, name: str) -> dict[str, Any] | None:
        try:
            found: dict[str, Any] = self.custom.get_namespaced_custom_object(
                GROUP, VERSION, self.namespace, "videojobs", name
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return found

    def patch_spec(self, name: str, **spec: Any) -> None:
        self.custom.patch_namespaced_custom_object(
            GROUP, VERSION, self.namespace, "videojobs", name, {"spec": spec}
        )

    def phase(self, name: str) -> str | None:
        vj = self.videojob(name) or {}
        phase: str | None = (vj.get("status") or {}).get("phase")
        return phase

    def wait_phase(self, name: str, *phases: str, timeout: float = 60) -> dict[str, Any]:
        def reached() -> dict[str, Any] | None:
            vj = self.videojob(name)
            return vj if vj and (vj.get("status") or {}).get("phase") in phases else None

        return self.wait(reached, timeout, f"VideoJob {name} to reach {phases}")

    def segments(self, videojob: str | None = None) -> list[dict[str, Any]]:
        items = self.custom.list_namespaced_custom_object(
            GROUP, VERSION, self.namespace, "segments"
        )["items"]
        if videojob is not None:
            items = [s for s in items if s["spec"]["videoJob"] == videojob]
        return sorted(items, key=lambda s: s["spec"]["index"])

    def jobs(self, role: str | None = None, videojob: str | None = None) -> list[Any]:
        selector = ["stereo.dev/role" + (f"={role}" if role else "")]
        if videojob:
            selector.append(f"stereo.dev/videojob={videojob}")
        return list(
            self.batch.list_namespaced_job(self.namespace, label_selector=",".join(selector)).items
        )

    def teardown(self) -> None:
        """Delete the VideoJobs while an operator still runs (its finalizer), then stop it."""
        try:
            items = self.custom.list_namespaced_custom_object(
                GROUP, VERSION, self.namespace, "videojobs"
            )["items"]
            for vj in items:
                self.custom.delete_namespaced_custom_object(
                    GROUP, VERSION, self.namespace, "videojobs", vj["metadata"]["name"]
                )
            live = [p for p in self.operators if p.running]
            deadline = time.monotonic() + (20 if live else 0)
            while (
                time.monotonic() < deadline
                and self.custom.list_namespaced_custom_object(
                    GROUP, VERSION, self.namespace, "videojobs"
                )["items"]
            ):
                time.sleep(0.5)
            for vj in self.custom.list_namespaced_custom_object(
                GROUP, VERSION, self.namespace, "videojobs"
            )["items"]:
                self.custom.patch_namespaced_custom_object(
                    GROUP,
                    VERSION,
                    self.namespace,
                    "videojobs",
                    vj["metadata"]["name"],
                    {"metadata": {"finalizers": None}},
                )
        finally:
            for proc in self.operators:
                proc.stop()


def active(job: Any) -> bool:
    conds = job.status.conditions or []
    return not any(c.type in ("Complete", "Failed") and c.status == "True" for c in conds)


# ---------------------------------------------------------------------------------------------
# Media


def cpu_inference_template(env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """An inference pod template for the job backend on CPU nodes (no GPU asked for), running
    stereo-infer through the fault wrapper, with ``env`` added."""
    return {
        "command": [sys.executable, str(FAULT_INFER)],
        "gpus": 0,
        "tolerations": [],
        "env": [{"name": k, "value": v} for k, v in (env or {}).items()],
        "ttlSecondsAfterFinished": 600,
    }


def make_video(path: Path, seconds: float, fps: int = 24, audio: bool = True) -> Path:
    inputs = ["-f", "lavfi", "-i", f"testsrc2=size=160x90:rate={fps}"]
    if audio:
        inputs += ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"]
    codecs = ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"]
    codecs += ["-c:a", "aac"] if audio else []
    subprocess.run(
        ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", *inputs, "-t", str(seconds),
         *codecs, str(path)],
        check=True,
        timeout=60,
    )  # fmt: skip
    return path


def probe_stream(path: Path, stream: str, entry: str, count: bool = False) -> str:
    """One field of one stream (JSON: a csv row would also hold the stream's side data)."""
    args = ["ffprobe", "-v", "error", "-select_streams", stream]
    args += ["-count_frames"] if count else []
    args += ["-show_entries", f"stream={entry}", "-of", "json", str(path)]
    out = subprocess.run(args, check=True, capture_output=True, text=True, timeout=60).stdout
    return str(json.loads(out)["streams"][0][entry])


def frame_count(path: Path) -> int:
    return int(probe_stream(path, "v:0", "nb_read_frames", count=True))


def audio_duration(path: Path) -> float:
    return float(probe_stream(path, "a:0", "duration"))


def file_path(uri: str) -> Path:
    assert uri.startswith("file://"), uri
    return Path(uri.removeprefix("file://"))


# ---------------------------------------------------------------------------------------------
# Audit log


def operator_requests(audit_log: Path, namespace: str) -> list[dict[str, Any]]:
    """The operator's requests about objects in `namespace`, one entry per request."""
    seen: dict[str, dict[str, Any]] = {}
    for line in audit_log.read_text(errors="replace").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if entry.get("user", {}).get("username") != OPERATOR_USER:
            continue
        if (entry.get("objectRef") or {}).get("namespace") != namespace:
            continue
        seen.setdefault(entry["auditID"], entry)
    return list(seen.values())


# ---------------------------------------------------------------------------------------------
# Fixtures (import them into a test module)


@pytest.fixture(scope="session")
def cluster_access(kubeconfig: Path, api: client.ApiClient) -> ClusterAccess:
    return setup_cluster(kubeconfig, api)


@pytest.fixture(scope="session")
def media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("media")
    return {
        "4s": make_video(folder / "four.mp4", 4),
        "6s": make_video(folder / "six.mp4", 6),
    }


@pytest.fixture
def harness(
    cluster_access: ClusterAccess, api: client.ApiClient, namespace: str, tmp_path: Path
) -> Iterator[Harness]:
    world = Harness(cluster_access, api, namespace, tmp_path)
    world.workspace.mkdir()
    world.faults.mkdir()
    try:
        yield world
    finally:
        world.teardown()
