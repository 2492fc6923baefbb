"""The local control plane really runs workloads: Jobs, GPU scheduling, GC, deletion."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from kubernetes import client

from tests.integration.kube import eventually


def _job(name: str, command: list[str], **pod: Any) -> dict[str, Any]:
    container = {"name": "main", "image": "local", "command": command}
    container.update(pod.pop("container", {}))
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "backoffLimit": pod.pop("backoffLimit", 0),
            **pod.pop("job", {}),
            "template": {"spec": {"restartPolicy": "Never", "containers": [container], **pod}},
        },
    }


def _job_condition(
    batch: client.BatchV1Api, ns: str, name: str, kind: str
) -> client.V1JobCondition | None:
    job = batch.read_namespaced_job(name, ns)
    return next(
        (c for c in job.status.conditions or [] if c.type == kind and c.status == "True"), None
    )


def test_job_runs_on_node_agent_with_resolved_env(
    api: client.ApiClient, namespace: str, tmp_path: Path
) -> None:
    core, batch = client.CoreV1Api(api), client.BatchV1Api(api)
    core.create_namespaced_config_map(
        namespace, {"metadata": {"name": "cfg"}, "data": {"colour": "teal"}}
    )
    core.create_namespaced_secret(
        namespace, {"metadata": {"name": "sec"}, "stringData": {"token": "s3cr3t"}}
    )
    out = tmp_path / "out.txt"
    env = [
        {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "COLOUR", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "colour"}}},
        {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "sec", "key": "token"}}},
        {"name": "GREETING", "value": "hello-$(COLOUR)"},
    ]
    script = f'echo "$POD $GREETING $TOKEN $NS_PREFIX_colour" > {out}'
    batch.create_namespaced_job(
        namespace,
        _job(
            "hello",
            ["sh", "-c", script],
            container={
                "env": env,
                "envFrom": [{"prefix": "NS_PREFIX_", "configMapRef": {"name": "cfg"}}],
            },
        ),
    )
    eventually(lambda: _job_condition(batch, namespace, "hello", "Complete"), 60, "Job Complete")
    pod_name, greeting, token, prefixed = out.read_text().split()
    assert pod_name.startswith("hello-")
    assert (greeting, token, prefixed) == ("hello-teal", "s3cr3t", "teal")
    pod = core.list_namespaced_pod(namespace, label_selector="job-name=hello").items[0]
    terminated = pod.status.container_statuses[0].state.terminated
    assert (pod.status.phase, terminated.exit_code, terminated.reason) == (
        "Succeeded",
        0,
        "Completed",
    )


def test_exit_code_drives_pod_failure_policy(api: client.ApiClient, namespace: str) -> None:
    batch = client.BatchV1Api(api)
    policy = {"rules": [{"action": "FailJob", "onExitCodes": {"operator": "In", "values": [3]}}]}
    script = "echo probing; echo 'error: no video stream in input' >&2; exit 3"
    batch.create_namespaced_job(
        namespace,
        _job(
            "bad-input",
            ["sh", "-c", script],
            backoffLimit=5,
            job={"podFailurePolicy": policy},
            container={"terminationMessagePolicy": "FallbackToLogsOnError"},
        ),
    )
    failed = eventually(
        lambda: _job_condition(batch, namespace, "bad-input", "Failed"), 60, "Job Failed"
    )
    assert failed.reason == "PodFailurePolicy"
    assert batch.read_namespaced_job("bad-input", namespace).status.failed == 1  # no retries
    pod = client.CoreV1Api(api).list_namespaced_pod(namespace).items[0]
    terminated = pod.status.container_statuses[0].state.terminated
    assert (terminated.exit_code, terminated.reason) == (3, "Error")
    # stdout and stderr are separate pipes (as with a real runtime): their lines may interleave
    # either way, but both are in the message.
    lines = sorted(terminated.message.splitlines())
    assert lines == ["error: no video stream in input", "probing"], terminated.message


def test_gpu_limits_are_really_scheduled(api: client.ApiClient, namespace: str) -> None:
    core = client.CoreV1Api(api)
    gpus = int(core.list_node().items[0].status.allocatable["nvidia.com/gpu"])

    def pod(name: str, count: int) -> dict[str, Any]:
        limits = {"nvidia.com/gpu": str(count)}
        container = {
            "name": "main",
            "image": "local",
            "command": ["sleep", "30"],
            "resources": {"limits": limits},
        }
        return {
            "metadata": {"name": name},
            "spec": {"containers": [container], "terminationGracePeriodSeconds": 1},
        }

    core.create_namespaced_pod(namespace, pod("fits", gpus))
    eventually(
        lambda: core.read_namespaced_pod("fits", namespace).status.phase == "Running",
        60,
        "pod Running",
    )
    core.create_namespaced_pod(namespace, pod("waits", 1))

    def unschedulable() -> bool:
        conds = core.read_namespaced_pod("waits", namespace).status.conditions or []
        return any(c.type == "PodScheduled" and c.reason == "Unschedulable" for c in conds)

    eventually(unschedulable, 30, "the second GPU pod to be Unschedulable")
    core.delete_namespaced_pod("fits", namespace)
    eventually(
        lambda: core.read_namespaced_pod("waits", namespace).status.phase == "Running",
        60,
        "the waiting pod to run once GPUs were free",
    )


def test_deleting_a_pod_stops_its_process(api: client.ApiClient, namespace: str) -> None:
    core = client.CoreV1Api(api)
    container = {"name": "main", "image": "local", "command": ["sleep", "600"]}
    core.create_namespaced_pod(
        namespace,
        {
            "metadata": {"name": "sleeper"},
            "spec": {"containers": [container], "terminationGracePeriodSeconds": 2},
        },
    )

    def container_pid() -> int | None:
        statuses = core.read_namespaced_pod("sleeper", namespace).status.container_statuses or []
        ids = [s.container_id for s in statuses if s.state.running]
        return int(ids[0].rsplit("/", 1)[1]) if ids else None

    pid = eventually(container_pid, 60, "the container to run")
    os.kill(pid, 0)
    core.delete_namespaced_pod("sleeper", namespace)

    def gone() -> bool:
        try:
            core.read_namespaced_pod("sleeper", namespace)
        except client.ApiException as exc:
            return exc.status == 404
        return False

    eventually(gone, 30, "the pod object to be removed")
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return
    raise AssertionError(f"process {pid} still alive after its pod was deleted")


def test_deleting_a_parent_collects_owned_children(api: client.ApiClient, namespace: str) -> None:
    core, batch = client.CoreV1Api(api), client.BatchV1Api(api)
    batch.create_namespaced_job(
        namespace, _job("parent", ["sleep", "600"], terminationGracePeriodSeconds=1)
    )
    eventually(
        lambda: core.list_namespaced_pod(namespace, label_selector="job-name=parent").items,
        60,
        "the Job's pod",
    )
    owner = core.create_namespaced_config_map(namespace, {"metadata": {"name": "owner"}})
    ref = {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner.metadata.uid}
    core.create_namespaced_config_map(
        namespace, {"metadata": {"name": "child", "ownerReferences": [ref]}}
    )

    batch.delete_namespaced_job("parent", namespace, propagation_policy="Background")
    core.delete_namespaced_config_map("owner", namespace, propagation_policy="Background")
    eventually(
        lambda: not core.list_namespaced_pod(namespace, label_selector="job-name=parent").items,
        60,
        "the garbage collector to delete the Job's pods",
    )
    eventually(
        lambda: (
            "child"
            not in {c.metadata.name for c in core.list_namespaced_config_map(namespace).items}
        ),
        60,
        "the garbage collector to delete the owned ConfigMap",
    )


def test_node_keeps_its_lease_fresh(api: client.ApiClient) -> None:
    coordination = client.CoordinationV1Api(api)
    lease = coordination.read_namespaced_lease("node-1", "kube-node-lease")
    first = lease.spec.renew_time
    eventually(
        lambda: (
            coordination.read_namespaced_lease("node-1", "kube-node-lease").spec.renew_time > first
        ),
        30,
        "the node lease to be renewed",
    )


def test_volumes_and_in_cluster_identity(
    api: client.ApiClient, namespace: str, tmp_path: Path
) -> None:
    """ConfigMap and Secret volumes at their mountPaths, and the automounted service-account
    token: a pod reads the API with its own identity, as in-cluster clients do."""
    core, rbac = client.CoreV1Api(api), client.RbacAuthorizationV1Api(api)
    core.create_namespaced_config_map(
        namespace, {"metadata": {"name": "app"}, "data": {"app.yaml": "colour: teal\n"}}
    )
    core.create_namespaced_secret(
        namespace, {"metadata": {"name": "creds"}, "stringData": {"token": "s3cr3t"}}
    )
    rule = {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}
    rbac.create_namespaced_role(namespace, {"metadata": {"name": "read"}, "rules": [rule]})
    subject = {"kind": "ServiceAccount", "name": "default", "namespace": namespace}
    role_ref = {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "read"}
    rbac.create_namespaced_role_binding(
        namespace, {"metadata": {"name": "read"}, "subjects": [subject], "roleRef": role_ref}
    )
    out = tmp_path / "seen.txt"
    script = (
        "from kubernetes import client, config; config.load_incluster_config();"
        f"cm = client.CoreV1Api().read_namespaced_config_map('app', '{namespace}');"
        f"print(open('/etc/app/app.yaml').read().strip(), open('/etc/creds/token').read(),"
        f" cm.data['app.yaml'].strip(), file=open('{out}', 'w'))"
    )
    container = {
        "name": "main",
        "image": "local",
        "command": ["python", "-c", script],
        "volumeMounts": [
            {"name": "app", "mountPath": "/etc/app", "readOnly": True},
            {"name": "creds", "mountPath": "/etc/creds"},
        ],
    }
    volumes = [
        {"name": "app", "configMap": {"name": "app"}},
        {"name": "creds", "secret": {"secretName": "creds"}},
    ]
    pod = {
        "metadata": {"name": "reader"},
        "spec": {"restartPolicy": "Never", "containers": [container], "volumes": volumes},
    }
    eventually(lambda: core.list_namespaced_service_account(namespace).items, 30, "default account")
    core.create_namespaced_pod(namespace, pod)
    phase = eventually(
        lambda: (
            core.read_namespaced_pod("reader", namespace).status.phase in ("Succeeded", "Failed")
            and core.read_namespaced_pod("reader", namespace).status.phase
        ),
        60,
        "the pod to finish",
    )
    assert phase == "Succeeded"
    assert out.read_text().split() == ["colour:", "teal", "s3cr3t", "colour:", "teal"]
    assert not Path("/etc/app/app.yaml").exists(), "the mount leaked into the host namespace"


def test_volume_over_a_directory_above_the_pod_directory(
    api: client.ApiClient, namespace: str, tmp_path: Path
) -> None:
    """An emptyDir at /tmp (as the Helm chart mounts one) hides the host's /tmp, where the
    node's pod directories live here: the other volumes and the token must still be bound."""
    core = client.CoreV1Api(api)
    core.create_namespaced_config_map(
        namespace, {"metadata": {"name": "app"}, "data": {"colour": "teal"}}
    )
    script = (
        "ls -A /tmp > /out/tmp-listing; echo $(cat /etc/app/colour) > /out/seen;"
        " test -s /var/run/secrets/kubernetes.io/serviceaccount/token && echo token >> /out/seen"
    )
    container = {
        "name": "main",
        "image": "local",
        "command": ["sh", "-c", script],
        "volumeMounts": [
            {"name": "app", "mountPath": "/etc/app"},
            {"name": "tmp", "mountPath": "/tmp"},
            {"name": "out", "mountPath": "/out"},
        ],
    }
    volumes = [
        {"name": "app", "configMap": {"name": "app"}},
        {"name": "tmp", "emptyDir": {}},
        {"name": "out", "hostPath": {"path": str(tmp_path)}},
    ]
    eventually(lambda: core.list_namespaced_service_account(namespace).items, 30, "default account")
    core.create_namespaced_pod(
        namespace,
        {
            "metadata": {"name": "shadowed"},
            "spec": {"restartPolicy": "Never", "containers": [container], "volumes": volumes},
        },
    )

    def finished() -> str | None:
        phase = core.read_namespaced_pod("shadowed", namespace).status.phase
        return phase if phase in ("Succeeded", "Failed") else None

    assert eventually(finished, 60, "the pod to finish") == "Succeeded"
    assert (tmp_path / "seen").read_text().split() == ["teal", "token"]
    # The emptyDir is empty but for the project's own checkout and interpreter, bound back on
    # top when they live under /tmp (as in a CI clone there).
    environment = {Path(__file__).resolve().parents[2], Path(sys.prefix), Path(sys.base_prefix)}
    under_tmp = {
        p.resolve().relative_to("/tmp").parts[0]
        for p in environment
        if p.resolve().is_relative_to("/tmp")
    }
    assert set((tmp_path / "tmp-listing").read_text().split()) == under_tmp
