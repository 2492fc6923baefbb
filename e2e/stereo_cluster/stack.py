"""The embedded default, whole: the local cluster, SeaweedFS, and the Helm chart installed.

`up` brings up, or reuses what already runs of,
- the local cluster (control plane + node agent, `cluster/`),
- SeaweedFS as a host process on the first node's bridge gateway (`seaweedfs/`), reachable
  from pods as `seaweedfs.seaweedfs.svc.cluster.local:8333`: a selectorless Service whose
  EndpointSlice names the gateway address, served by the node agent's Service proxy,
- the storage Secret (`stereo-storage`) in the release's namespace and in `default`,
- the chart (`helm upgrade --install`, values: examples/values/local.yaml plus this stack's
  `values.yaml`), skipped when the chart and values are those already deployed,
- the filer's webhook to the watcher's Service (bearer token from the chart's Secret), and
  the bucket.
The pods' images are never pulled: the node agent runs the chart's commands with the
project's environment.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client, config

from stereo_cluster.cluster import LocalCluster
from stereo_cluster.controlplane import ClusterState, ControlPlaneError
from stereo_cluster.nodeagent import network
from stereo_cluster.store import SeaweedStore, StoreError, StoreState, Webhook

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "stereo-operator"
LOCAL_VALUES = ROOT / "examples" / "values" / "local.yaml"
DEFAULT_STATE_DIR = ROOT / ".state"

NAMESPACE = "stereo-system"
RELEASE = "stereo"
BUCKET = "stereo"
WORKSPACE_PREFIX = "workspace"
# The Secret the chart hands to its components and (envFrom) to the Jobs in each VideoJob's
# namespace: it must exist in every namespace that runs VideoJobs.
STORAGE_SECRET = "stereo-storage"
JOB_NAMESPACES = ("default",)
STORE_NAMESPACE = "seaweedfs"
STORE_SERVICE = "seaweedfs"
STORE_SERVICE_PORT = 8333
STORE_IN_CLUSTER = f"http://{STORE_SERVICE}.{STORE_NAMESPACE}.svc.cluster.local:8333"
STACK_FILE = "stack.json"
HELM_TIMEOUT = 300


class StackError(RuntimeError):
    """A part of the stack did not come up; the message says which and where its log is."""


@dataclass(frozen=True)
class Stack:
    state_dir: Path
    kubeconfig: Path
    namespace: str
    release: str
    s3_endpoint: str
    """The store's S3 API, reachable from the host."""
    bucket: str
    access_key: str
    secret_key: str
    workspace: str
    """The chart's workspace, e.g. s3://stereo/workspace."""

    def env(self) -> dict[str, str]:
        """What an S3 client on the host needs (boto3 reads these)."""
        return {
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ENDPOINT_URL_S3": self.s3_endpoint,
            "KUBECONFIG": str(self.kubeconfig),
        }


# ------------------------------------------------------------------------- public interface


def up(state_dir: Path = DEFAULT_STATE_DIR) -> Stack:
    """Bring up every part that is not running (see the module docstring); reuse the rest."""
    state_dir = state_dir.resolve()
    state_dir.mkdir(parents=True, exist_ok=True)
    cluster = _cluster(state_dir)
    try:
        cluster_state = cluster.up()
    except ControlPlaneError as exc:
        raise StackError(str(exc)) from None
    gateway = _gateway(cluster_state)
    store = SeaweedStore(state_dir / "seaweedfs")
    stored = store.load()
    keys = (
        (stored.access_key, stored.secret_key)
        if stored
        else ("stereo-" + secrets.token_hex(4), secrets.token_hex(20))
    )
    api = config.new_client_from_config(config_file=str(cluster.kubeconfig))
    # The store's Service exists before the chart's pods start: their hosts file lists the
    # Services present at start (there is no DNS). Its EndpointSlice follows the store's port.
    _apply(cluster.kubeconfig, [*_storage_secrets(*keys), *_store_service()])
    _helm_install(state_dir, cluster.kubeconfig)
    webhook = _watcher_webhook(api)
    try:
        running = store.ensure(gateway, webhook, keys)
    except (StoreError, OSError) as exc:
        raise StackError(f"SeaweedFS: {exc}") from None
    _apply(cluster.kubeconfig, [_store_endpoints(running)])
    _ensure_bucket(running)
    stack = _stack(state_dir, cluster.kubeconfig, running)
    (state_dir / STACK_FILE).write_text(json.dumps({"release": RELEASE, "bucket": BUCKET}))
    return stack


def down(state_dir: Path = DEFAULT_STATE_DIR) -> None:
    """Stop the store and the cluster and remove their state (the demo's files stay)."""
    state_dir = state_dir.resolve()
    SeaweedStore(state_dir / "seaweedfs").remove()
    _cluster(state_dir).down()
    for name in (STACK_FILE, "values.yaml", "release.sha256"):
        (state_dir / name).unlink(missing_ok=True)
    shutil.rmtree(state_dir / "helm", ignore_errors=True)


def status(state_dir: Path = DEFAULT_STATE_DIR) -> Stack | None:
    """The running stack, or None when a part of it is not running."""
    state_dir = state_dir.resolve()
    if not (state_dir / STACK_FILE).is_file():
        return None
    cluster = _cluster(state_dir)
    store = SeaweedStore(state_dir / "seaweedfs")
    stored = store.load()
    if not cluster.control_plane.is_healthy() or not store.running(stored):
        return None
    assert stored is not None
    return _stack(state_dir, cluster.kubeconfig, stored)


# ------------------------------------------------------------------------- parts


def _cluster(state_dir: Path) -> LocalCluster:
    return LocalCluster(state_dir / "cluster")


def _stack(state_dir: Path, kubeconfig: Path, store: StoreState) -> Stack:
    return Stack(
        state_dir=state_dir,
        kubeconfig=kubeconfig,
        namespace=NAMESPACE,
        release=RELEASE,
        s3_endpoint=store.s3_endpoint,
        bucket=BUCKET,
        access_key=store.access_key,
        secret_key=store.secret_key,
        workspace=f"s3://{BUCKET}/{WORKSPACE_PREFIX}",
    )


def _gateway(state: ClusterState) -> str:
    """The first node's bridge gateway: a host address that the pods' default route reaches."""
    reason = network.unavailable_reason()
    if state.cidrs is None or reason is not None:
        raise StackError(
            f"the embedded stack needs pod networking (Services, the store reachable from "
            f"pods), which is unavailable: {reason or 'the cluster has no pod range'}"
        )
    return str(ipaddress.IPv4Network(state.cidrs.node(1)).network_address + 1)


def _kubectl() -> str:
    return str(Path(sys.executable).parent / "kubectl")


def _apply(kubeconfig: Path, objects: list[dict[str, Any]]) -> None:
    manifest = yaml.safe_dump_all(objects, sort_keys=False)
    done = subprocess.run(
        [_kubectl(), f"--kubeconfig={kubeconfig}", "apply", "--server-side", "-f", "-"],
        input=manifest,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if done.returncode != 0:
        raise StackError(f"kubectl apply failed: {done.stderr.strip()}")


def _namespace(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}


def _storage_secrets(
    access_key: str, secret_key: str, namespaces: tuple[str, ...] = (NAMESPACE, *JOB_NAMESPACES)
) -> list[dict[str, Any]]:
    objects = [_namespace(ns) for ns in namespaces]
    for ns in namespaces:
        objects.append(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": STORAGE_SECRET, "namespace": ns},
                "type": "Opaque",
                "stringData": {
                    "AWS_ACCESS_KEY_ID": access_key,
                    "AWS_SECRET_ACCESS_KEY": secret_key,
                },
            }
        )
    return objects


_STORE_LABELS = {"app.kubernetes.io/name": "seaweedfs", "app.kubernetes.io/part-of": "stereo-stack"}


def _store_service() -> list[dict[str, Any]]:
    """A Service without selector: its one endpoint, the store on the host, is set by hand."""
    port = {"name": "s3", "port": STORE_SERVICE_PORT, "protocol": "TCP"}
    return [
        _namespace(STORE_NAMESPACE),
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {
                "name": STORE_SERVICE,
                "namespace": STORE_NAMESPACE,
                "labels": _STORE_LABELS,
            },
            "spec": {"ports": [port]},
        },
    ]


def _store_endpoints(store: StoreState) -> dict[str, Any]:
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": f"{STORE_SERVICE}-host",
            "namespace": STORE_NAMESPACE,
            "labels": {
                **_STORE_LABELS,
                "kubernetes.io/service-name": STORE_SERVICE,
                "endpointslice.kubernetes.io/managed-by": "stereo-cluster-stack",
            },
        },
        "addressType": "IPv4",
        "endpoints": [{"addresses": [store.host], "conditions": {"ready": True}}],
        "ports": [{"name": "s3", "port": store.s3_port, "protocol": "TCP"}],
    }


def stack_values() -> dict[str, Any]:
    """This stack's values on top of examples/values/local.yaml."""
    return {
        "storage": {
            "endpoint": STORE_IN_CLUSTER,
            "bucket": BUCKET,
            "rootPrefix": WORKSPACE_PREFIX,
            # Generated keys in a Secret of our own (copied into each Jobs' namespace), not
            # the example's fixed plain-text ones.
            "existingSecret": STORAGE_SECRET,
            "devCredentials": {"accessKeyId": "", "secretAccessKey": ""},
        },
    }


def helm_binary() -> str:
    """helm from scripts/tools (built once with `go install`, then cached)."""
    if os.environ.get("HELM_BIN"):
        return os.environ["HELM_BIN"]
    done = subprocess.run(
        [str(ROOT / "scripts" / "tools"), "helm"], capture_output=True, text=True, timeout=1800
    )
    if done.returncode != 0:
        raise StackError(f"cannot build helm: {done.stderr.strip()}")
    return done.stdout.strip()


def helm(state_dir: Path, kubeconfig: Path, *args: str, timeout: float = HELM_TIMEOUT + 60) -> str:
    """Run helm against the stack's cluster, its caches under the state directory."""
    home = state_dir / "helm"
    env = {
        **os.environ,
        "KUBECONFIG": str(kubeconfig),
        "HELM_CACHE_HOME": str(home / "cache"),
        "HELM_CONFIG_HOME": str(home / "config"),
        "HELM_DATA_HOME": str(home / "data"),
    }
    done = subprocess.run(
        [helm_binary(), *args], capture_output=True, text=True, env=env, timeout=timeout
    )
    if done.returncode != 0:
        raise StackError(f"helm {args[0]} failed: {done.stderr.strip() or done.stdout.strip()}")
    return done.stdout


def _chart_digest(values: str) -> str:
    digest = hashlib.sha256(values.encode())
    for path in sorted(p for p in CHART.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(CHART)).encode())
        digest.update(path.read_bytes())
    digest.update(LOCAL_VALUES.read_bytes())
    return digest.hexdigest()


def _deployed(state_dir: Path, kubeconfig: Path) -> bool:
    try:
        out = helm(state_dir, kubeconfig, "status", RELEASE, "-n", NAMESPACE, "-o", "json")
    except StackError:
        return False
    return bool(json.loads(out).get("info", {}).get("status") == "deployed")


def _helm_install(state_dir: Path, kubeconfig: Path) -> None:
    """`helm upgrade --install`, unless this very chart and these values are deployed."""
    values = yaml.safe_dump(stack_values(), sort_keys=False)
    values_file = state_dir / "values.yaml"
    values_file.write_text(values)
    marker = state_dir / "release.sha256"
    digest = _chart_digest(values)
    current = marker.read_text().strip() if marker.is_file() else ""
    if current == digest and _deployed(state_dir, kubeconfig):
        return
    marker.unlink(missing_ok=True)
    helm(
        state_dir, kubeconfig,
        "upgrade", "--install", RELEASE, str(CHART),
        "-n", NAMESPACE, "--create-namespace",
        "-f", str(LOCAL_VALUES), "-f", str(values_file),
        "--wait", "--timeout", f"{HELM_TIMEOUT}s",
    )  # fmt: skip
    marker.write_text(digest + "\n")


def _watcher_webhook(api: client.ApiClient) -> Webhook:
    """The watcher Service's SeaweedFS endpoint (a ClusterIP: the host reaches those) and
    the token the chart generated for it."""
    core = client.CoreV1Api(api)
    selector = f"app.kubernetes.io/instance={RELEASE},app.kubernetes.io/component=watcher"
    services = core.list_namespaced_service(NAMESPACE, label_selector=selector).items
    tokens = core.list_namespaced_secret(NAMESPACE, label_selector=selector).items
    if len(services) != 1 or len(tokens) != 1:
        raise StackError(
            f"expected one watcher Service and one webhook token Secret of release {RELEASE} "
            f"in {NAMESPACE}, found {len(services)} and {len(tokens)}"
        )
    service = services[0]
    port = service.spec.ports[0].port
    token = base64.b64decode(tokens[0].data["token"]).decode()
    return Webhook(
        url=f"http://{service.spec.cluster_ip}:{port}/events/seaweedfs",
        token=token,
        path_prefix=f"/buckets/{BUCKET}/",
    )


def _ensure_bucket(store: StoreState, timeout: float = 30.0) -> None:
    import boto3
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError

    s3 = boto3.client(
        "s3",
        endpoint_url=store.s3_endpoint,
        aws_access_key_id=store.access_key,
        aws_secret_access_key=store.secret_key,
        region_name="us-east-1",
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 2}),
    )
    deadline = time.monotonic() + timeout
    while True:
        try:
            existing = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
            if BUCKET not in existing:
                s3.create_bucket(Bucket=BUCKET)
            return
        except (BotoCoreError, ClientError) as exc:
            # A freshly started S3 gateway may refuse the identity for a moment.
            if time.monotonic() > deadline:
                raise StackError(f"cannot create bucket {BUCKET}: {exc}") from None
            time.sleep(0.5)
