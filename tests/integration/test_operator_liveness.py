"""Liveness on the real local cluster: /healthz answers while the watches deliver, and fails
once they go silent (the operator's watch permission on its heartbeat Lease revoked)."""

from __future__ import annotations

import json
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import yaml
from kubernetes import client

from tests.operator.harness import PACKAGE, Harness, OperatorProcess, issue_kubeconfig

# The fixtures (cluster_access, harness, media) live in the harness module.
pytest_plugins = ["tests.operator.harness"]
pytestmark = pytest.mark.cluster

LEASE = "stereo-operator-heartbeat"
# Fast heartbeats, and watch requests the API server ends every 2 s, so that a revoked
# permission bites at the next reconnect rather than in 30 to 60 minutes.
TIMEOUT_SECONDS = 4
FAST: dict[str, Any] = {
    "liveness": {"heartbeatSeconds": 1, "timeoutSeconds": TIMEOUT_SECONDS},
    "watchTimeoutSeconds": 2,
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def healthz(port: int) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"{}")
    except (urllib.error.URLError, ConnectionError):
        return 0, {}  # not listening yet


def heartbeat(port: int) -> dict[str, Any] | None:
    """The endpoint's report once a renewal has come back through the watch."""
    code, body = healthz(port)
    return body if code == 200 and body.get("lastSeenRenewal") else None


def failure(port: int) -> dict[str, Any] | None:
    code, body = healthz(port)
    return body if code == 503 else None


@pytest.fixture
def own_identity(harness: Harness) -> Iterator[tuple[str, Any]]:
    """A user of its own, bound to its own copy of the operator's ClusterRole (so the test
    can take rights away without touching other tests' operators)."""
    name = f"liveness-{harness.namespace}"
    rbac = client.RbacAuthorizationV1Api(harness.api)
    manifest = yaml.safe_load((PACKAGE / "manifests" / "rbac.yaml").read_text())
    role = {**manifest, "metadata": {"name": name}}
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": name}],
    }
    rbac.create_cluster_role(role)
    rbac.create_cluster_role_binding(binding)
    try:
        yield name, role
    finally:
        rbac.delete_cluster_role_binding(name)
        rbac.delete_cluster_role(name)


def start(
    harness: Harness, user: str, port: int, *args: str, cluster_wide: bool = False
) -> OperatorProcess:
    """Scoped to the test's namespace, or cluster-wide as the chart runs it by default (the
    Lease then lives in the operator's own namespace, which the chart names in POD_NAMESPACE;
    the test's namespace stands in for it)."""
    config = harness.write_config(**FAST)
    log = harness.tmp / f"operator-{len(harness.operators)}.log"
    argv = [f"--liveness=http://127.0.0.1:{port}/healthz"]
    argv += [] if cluster_wide else [f"--namespace={harness.namespace}"]
    kubeconfig = issue_kubeconfig(harness.access.admin, user)
    env = {"POD_NAMESPACE": harness.namespace}
    proc = OperatorProcess(kubeconfig, config, log, [*argv, *args], env).start()
    harness.operators.append(proc)
    return proc


def lease_verbs(role: dict[str, Any], verbs: list[str]) -> dict[str, Any]:
    rules = [
        {**rule, "verbs": verbs} if rule.get("resourceNames") == [LEASE] else rule
        for rule in role["rules"]
    ]
    return {**role, "rules": rules}


@pytest.mark.parametrize("scope", ["namespace", "cluster"])
def test_liveness_fails_when_the_watch_goes_silent_and_recovers(
    harness: Harness, own_identity: tuple[str, Any], scope: str
) -> None:
    user, role = own_identity
    port = free_port()
    start(harness, user, port, "--standalone", cluster_wide=scope == "cluster")
    harness.wait(lambda: heartbeat(port), 60, "the first heartbeat to come back")

    # Idle (no VideoJob at all) for three times the timeout: live throughout.
    deadline = time.monotonic() + 12
    while time.monotonic() < deadline:
        code, body = healthz(port)
        assert code == 200, body
        time.sleep(0.5)
    lease = client.CoordinationV1Api(harness.api).read_namespaced_lease(LEASE, harness.namespace)
    assert datetime.now(UTC) - lease.spec.renew_time < timedelta(seconds=5)  # kept renewed

    # Take away list and watch on the Lease, keep patch: the renewals still go through, but
    # from the next reconnect on the watch delivers nothing.
    rbac = client.RbacAuthorizationV1Api(harness.api)
    rbac.replace_cluster_role(user, lease_verbs(role, ["get", "patch"]))
    revoked = time.monotonic()
    body = harness.wait(lambda: failure(port), 60, "/healthz to fail")
    print(f"/healthz failed {time.monotonic() - revoked:.1f}s after the revocation")
    assert f"heartbeat Lease {harness.namespace}/{LEASE}" in body["error"]
    assert "the operator's watch streams have gone silent" in body["error"]
    assert "liveness fails: the watch has not delivered" in harness.operators[0].tail(400)

    # Give the permission back: kopf's reconnect succeeds and the heartbeat is seen again.
    rbac.replace_cluster_role(user, role)
    restored = time.monotonic()
    harness.wait(lambda: heartbeat(port), 60, "/healthz to answer 200 again")
    print(f"/healthz answered 200 again {time.monotonic() - restored:.1f}s after the restore")
    assert harness.operators[0].running


def test_a_replica_standing_by_for_a_peer_stays_live(
    harness: Harness, own_identity: tuple[str, Any]
) -> None:
    user, _ = own_identity
    port = free_port()
    peering = f"liveness-{harness.namespace}"
    proc = start(harness, user, port, f"--peering={peering}", "--priority=1")
    harness.wait(lambda: heartbeat(port), 60, "the first heartbeat to come back")

    # A live peer of a higher priority appears: kopf pauses every watch of this replica, so
    # the heartbeats stop coming back, and that is as it should be.
    custom = client.CustomObjectsApi(harness.api)

    def peer(info: dict[str, Any] | None) -> None:
        custom.patch_namespaced_custom_object(
            "kopf.dev", "v1", harness.namespace, "kopfpeerings", peering,
            {"status": {"another-replica": info}},
        )  # fmt: skip

    now = datetime.now(UTC).isoformat()
    peer({"priority": 100, "lifetime": 300, "lastseen": now})
    harness.wait(lambda: "Pausing operations" in proc.tail(400), 30, "kopf to pause")
    body = harness.wait(
        lambda: (report := heartbeat(port)) and "standingByFor" in report and report,
        60,
        "/healthz to report the standby",
    )
    assert body["standingByFor"] == ["another-replica"]
    assert body["waitingSeconds"] >= TIMEOUT_SECONDS  # overdue: only the standby saves it

    # The peer goes: the watches resume and the heartbeat comes back.
    peer(None)
    harness.wait(
        lambda: (report := heartbeat(port)) and "standingByFor" not in report and report,
        60,
        "the heartbeat to come back after the standby",
    )
