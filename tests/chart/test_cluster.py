"""The chart against the session's real API server: a server-side dry run of every value set
(admission, strict field validation, our CRDs installed), and a real install, upgrade and
uninstall whose RBAC is then probed with SubjectAccessReviews."""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from tests.chart.conftest import CHART, VALUE_SETS, Helm, documents, find, kubectl
from tests.integration.kube import eventually

pytestmark = pytest.mark.cluster

# MinIO storage and its webhook: both components, the generated token, every RBAC object.
MINIO = (
    "--set", "storage.kind=minio,storage.bucket=bkt,storage.endpoint=http://minio:9000",
    "--set", "operator.replicaCount=0",
    "--set", "watcher.replicaCount=0",
)  # fmt: skip


def _default_service_account(api: client.ApiClient, namespace: str) -> None:
    """Pods are refused until the namespace's default ServiceAccount exists."""
    core = client.CoreV1Api(api)

    def present() -> bool:
        return any(
            sa.metadata.name == "default"
            for sa in core.list_namespaced_service_account(namespace).items
        )

    eventually(present, 30, f"the default ServiceAccount in {namespace}")


@pytest.mark.parametrize("name", list(VALUE_SETS))
def test_server_side_dry_run(
    installed_crds: None,
    helm: Helm,
    kubeconfig: Path,
    api: client.ApiClient,
    namespace: str,
    name: str,
) -> None:
    _default_service_account(api, namespace)
    manifests = helm.template(
        values=VALUE_SETS[name], namespace=namespace, release=f"r-{namespace}"
    )
    result = kubectl(
        kubeconfig,
        "apply",
        "--dry-run=server",
        "--validate=strict",
        "-n",
        namespace,
        "-f",
        "-",
        stdin=manifests,
    )
    assert result.returncode == 0, result.stderr
    applied = [line for line in result.stdout.splitlines() if line.endswith("(server dry run)")]
    assert len(applied) == len(documents(manifests)), result.stdout


def test_server_refuses_a_broken_manifest(
    installed_crds: None, helm: Helm, kubeconfig: Path, namespace: str
) -> None:
    """The dry run can fail: an unknown field in the rendered Deployment is refused."""
    manifests = helm.template(namespace=namespace, release=f"r-{namespace}")
    broken = manifests.replace("terminationGracePeriodSeconds:", "terminationGracePeriod:", 1)
    assert broken != manifests
    result = kubectl(
        kubeconfig, "apply", "--dry-run=server", "-n", namespace, "-f", "-", stdin=broken
    )
    assert result.returncode != 0
    assert "terminationGracePeriod" in result.stderr


# ------------------------------------------------------------------------- real install


def _helm_env(helm: Helm, kubeconfig: Path) -> Helm:
    return Helm(helm.binary, {**helm.env, "KUBECONFIG": str(kubeconfig)})


@pytest.fixture
def release(
    installed_crds: None, helm: Helm, kubeconfig: Path, api: client.ApiClient, namespace: str
) -> Iterator[tuple[Helm, str]]:
    """The chart installed for real (no pods: both Deployments scaled to 0, since the local
    node runs no images), uninstalled afterwards."""
    _default_service_account(api, namespace)
    h = _helm_env(helm, kubeconfig)
    name = f"r-{namespace}"
    installed = h.run("install", name, str(CHART), "-n", namespace, *MINIO)
    assert installed.returncode == 0, installed.stderr
    yield h, name
    h.run("uninstall", name, "-n", namespace)


def _can(
    api: client.ApiClient,
    user: str,
    verb: str,
    resource: str,
    *,
    group: str = "",
    namespace: str | None = "somewhere",
    name: str | None = None,
    subresource: str | None = None,
) -> bool:
    attrs: dict[str, Any] = {"verb": verb, "group": group, "resource": resource}
    if namespace:
        attrs["namespace"] = namespace
    if name:
        attrs["name"] = name
    if subresource:
        attrs["subresource"] = subresource
    review = client.AuthorizationV1Api(api).create_subject_access_review(
        {"spec": {"user": user, "resourceAttributes": attrs}}
    )
    return bool(review.status.allowed)


def test_install_grants_least_privilege(
    release: tuple[Helm, str], api: client.ApiClient, namespace: str
) -> None:
    _, name = release
    watcher = f"system:serviceaccount:{namespace}:{name}-stereo-operator-watcher"
    operator = f"system:serviceaccount:{namespace}:{name}-stereo-operator-operator"
    sd = "stereo.dev"

    assert _can(api, watcher, "get", "segments", group=sd)
    assert _can(api, watcher, "patch", "segments", group=sd, subresource="status")
    assert _can(api, watcher, "watch", "videojobs", group=sd, namespace=None)
    assert not _can(api, watcher, "patch", "segments", group=sd)
    assert not _can(api, watcher, "list", "segments", group=sd)
    assert not _can(api, watcher, "update", "segments", group=sd, subresource="status")
    assert not _can(api, watcher, "patch", "videojobs", group=sd)
    assert not _can(api, watcher, "create", "jobs", group="batch")
    assert not _can(api, watcher, "get", "secrets", namespace=namespace)

    assert _can(api, operator, "create", "jobs", group="batch")
    assert _can(api, operator, "create", "segments", group=sd)
    assert _can(api, operator, "patch", "videojobs", group=sd, subresource="status")
    assert _can(api, operator, "list", "pods")
    assert _can(api, operator, "create", "events")
    peering = f"{name}-stereo-operator"
    cluster_peerings = partial(_can, api, operator, resource="clusterkopfpeerings")
    kopf: dict[str, Any] = {"group": "kopf.dev", "namespace": None}
    assert cluster_peerings("patch", **kopf, name=peering)
    assert cluster_peerings("create", **kopf)  # the operator makes it if missing
    assert not cluster_peerings("patch", **kopf, name="other")
    assert not _can(api, operator, "create", "videojobs", group=sd)
    assert not _can(api, operator, "delete", "videojobs", group=sd)
    assert not _can(api, operator, "get", "secrets", namespace=namespace)
    assert not _can(api, operator, "create", "pods")


def test_install_creates_the_peering_object(
    release: tuple[Helm, str], api: client.ApiClient
) -> None:
    _, name = release
    peering = client.CustomObjectsApi(api).get_cluster_custom_object(
        "kopf.dev", "v1", "clusterkopfpeerings", f"{name}-stereo-operator"
    )
    assert peering["metadata"]["labels"]["app.kubernetes.io/instance"] == name


def test_upgrade_keeps_the_generated_webhook_token(
    release: tuple[Helm, str], api: client.ApiClient, namespace: str, kubeconfig: Path
) -> None:
    h, name = release
    core = client.CoreV1Api(api)
    secret = f"{name}-stereo-operator-webhook-token"
    before = core.read_namespaced_secret(secret, namespace).data["token"]
    upgraded = h.run(
        "upgrade", name, str(CHART), "-n", namespace, *MINIO, "--set", "jobs.maxInflight=4"
    )
    assert upgraded.returncode == 0, upgraded.stderr
    assert core.read_namespaced_secret(secret, namespace).data["token"] == before
    config = core.read_namespaced_config_map(f"{name}-stereo-operator-operator", namespace)
    assert "maxInflight: 4" in config.data["config.yaml"]
    # What the cluster holds is what `helm template` renders (apart from the token).
    rendered = documents(
        h.template(*MINIO, "--set", "jobs.maxInflight=4", namespace=namespace, release=name)
    )
    assert find(rendered, "ConfigMap", "-operator")["data"] == config.data


def test_uninstall_removes_cluster_scoped_objects(
    installed_crds: None,
    helm: Helm,
    kubeconfig: Path,
    api: client.ApiClient,
    namespace: str,
) -> None:
    h = _helm_env(helm, kubeconfig)
    name = f"u-{namespace}"
    installed = h.run("install", name, str(CHART), "-n", namespace, *MINIO)
    assert installed.returncode == 0, installed.stderr
    rbac = client.RbacAuthorizationV1Api(api)
    assert rbac.read_cluster_role(f"{name}-stereo-operator-watcher")
    removed = h.run("uninstall", name, "-n", namespace, "--wait")
    assert removed.returncode == 0, removed.stderr
    names = {r.metadata.name for r in rbac.list_cluster_role().items}
    assert not {f"{name}-stereo-operator-watcher", f"{name}-stereo-operator-operator"} & names
    peerings = client.CustomObjectsApi(api).list_cluster_custom_object(
        "kopf.dev", "v1", "clusterkopfpeerings"
    )
    assert f"{name}-stereo-operator" not in {p["metadata"]["name"] for p in peerings["items"]}
    # The CRDs stay (Helm never deletes what crds/ installed): VideoJobs survive an uninstall.
    ext = client.ApiextensionsV1Api(api)
    assert ext.read_custom_resource_definition("videojobs.stereo.dev")


# ------------------------------------------------------------------------- running it


def _post(url: str, body: bytes, token: str | None) -> int:
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def test_installed_chart_runs_and_passes_helm_test(
    installed_crds: None,
    helm: Helm,
    kubeconfig: Path,
    api: client.ApiClient,
    namespace: str,
) -> None:
    """The rendered Deployments really run (the local node runs their commands with the
    project's environment): both become Ready, `helm test` reaches both health endpoints
    through their Services, the two operator replicas meet in the peering object, and the
    webhook takes the generated token only."""
    _default_service_account(api, namespace)
    h = _helm_env(helm, kubeconfig)
    name = f"e-{namespace}"
    installed = h.run(
        "install", name, str(CHART), "-n", namespace,
        "--set", "storage.kind=minio,storage.bucket=bkt,storage.endpoint=http://127.0.0.1:9",
        "--set", "operator.replicaCount=2",
        "--wait", "--timeout", "180s",
        timeout=240,
    )  # fmt: skip
    core = client.CoreV1Api(api)
    try:
        assert installed.returncode == 0, installed.stderr
        pods = core.list_namespaced_pod(
            namespace, label_selector=f"app.kubernetes.io/instance={name}"
        ).items
        # Services need pod networking, which the test command has (it runs as root).
        assert all(p.status.pod_ip != "127.0.0.1" for p in pods)
        assert len(pods) == 3

        tested = h.run("test", name, "-n", namespace, "--timeout", "120s", timeout=180)
        assert tested.returncode == 0, tested.stdout + tested.stderr
        assert "Phase:          Succeeded" in tested.stdout

        peering = f"{name}-stereo-operator"
        custom = client.CustomObjectsApi(api)

        def records() -> dict[str, Any] | None:
            obj = custom.get_cluster_custom_object("kopf.dev", "v1", "clusterkopfpeerings", peering)
            status: dict[str, Any] = obj.get("status") or {}
            return status if len(status) == 2 else None

        status = eventually(records, 60, "both operator replicas in the peering object")
        assert len({record["priority"] for record in status.values()}) == 2

        service = core.read_namespaced_service(f"{name}-stereo-operator-watcher", namespace)
        url = f"http://{service.spec.cluster_ip}:8080/events/minio"
        secret = core.read_namespaced_secret(f"{name}-stereo-operator-webhook-token", namespace)
        token = base64.b64decode(secret.data["token"]).decode()
        # An object under no VideoJob: accepted and ignored.
        record = {
            "eventName": "s3:ObjectCreated:Put",
            "eventTime": "2026-01-01T00:00:00Z",
            "s3": {
                "bucket": {"name": "bkt"},
                "object": {"key": "elsewhere/x.mp4", "size": 1, "eTag": "e", "sequencer": "1"},
            },
        }
        event = json.dumps({"Records": [record]}).encode()
        assert _post(url, event, None) == 401
        assert _post(url, event, "wrong") == 401
        assert _post(url, event, token) == 200
    finally:
        h.run("uninstall", name, "-n", namespace, "--wait", timeout=180)

        # The operator serves the whole cluster: it must be gone before other tests run.
        def stopped() -> bool:
            selector = f"app.kubernetes.io/instance={name}"
            return not core.list_namespaced_pod(namespace, label_selector=selector).items

        eventually(stopped, 60, "the release's pods to stop")
