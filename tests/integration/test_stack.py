"""The embedded stack (stereo_cluster.stack): up brings every part, a second up reuses all of
it, a pod reaches the store by its Service name, a write to the bucket reaches the watcher as
a filer webhook, and down leaves nothing running."""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from botocore.config import Config
from kubernetes import client, config

from stereo_cluster import stack
from stereo_cluster.store import SeaweedStore
from tests.integration.kube import eventually

pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module")
def state_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    path = tmp_path_factory.mktemp("stack")
    try:
        yield path
    finally:
        stack.down(path)


def _revision(state_dir: Path, s: stack.Stack) -> int:
    out = stack.helm(state_dir, s.kubeconfig, "status", s.release, "-n", s.namespace, "-o", "json")
    return int(json.loads(out)["version"])


def _pods(api: client.ApiClient, s: stack.Stack) -> set[str]:
    pods = client.CoreV1Api(api).list_namespaced_pod(s.namespace).items
    return {p.metadata.uid for p in pods if p.status.phase == "Running"}


def test_up_twice_reuses_everything_and_down_removes_it(state_dir: Path) -> None:
    first = stack.up(state_dir)
    api = config.new_client_from_config(config_file=str(first.kubeconfig))
    store_pid = SeaweedStore(state_dir / "seaweedfs").load()
    revision, pods = _revision(state_dir, first), _pods(api, first)
    assert len(pods) == 2  # the operator and the watcher

    second = stack.up(state_dir)
    assert second == first == stack.status(state_dir)
    assert SeaweedStore(state_dir / "seaweedfs").load() == store_pid
    assert _revision(state_dir, second) == revision
    assert _pods(api, second) == pods

    _check_store_from_a_pod(api, first)
    _check_webhook_reaches_the_watcher(first)

    stack.down(state_dir)
    assert stack.status(state_dir) is None
    assert store_pid is not None and not _alive(store_pid.pid)
    assert not (state_dir / "cluster").exists() and not (state_dir / "seaweedfs").exists()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _check_store_from_a_pod(api: client.ApiClient, s: stack.Stack) -> None:
    """A pod in its own network namespace lists the bucket through the in-cluster name."""
    script = (
        "import boto3, botocore.config as c, sys;"
        f"s3 = boto3.client('s3', endpoint_url='{stack.STORE_IN_CLUSTER}', region_name='us-east-1',"
        " config=c.Config(s3={'addressing_style': 'path'}));"
        f"s3.head_bucket(Bucket='{s.bucket}'); print('bucket reachable')"
    )
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "store-probe"},
        "spec": {
            "restartPolicy": "Never",
            "containers": [
                {
                    "name": "main",
                    "image": "local",
                    "command": [sys.executable, "-c", script],
                    "envFrom": [{"secretRef": {"name": stack.STORAGE_SECRET}}],
                }
            ],
        },
    }
    core = client.CoreV1Api(api)
    core.create_namespaced_pod("default", pod)

    def finished() -> str | None:
        phase: str = core.read_namespaced_pod("store-probe", "default").status.phase
        return phase if phase in ("Succeeded", "Failed") else None

    assert eventually(finished, 120, "the store probe pod to finish") == "Succeeded"
    core.delete_namespaced_pod("store-probe", "default", grace_period_seconds=0)


def _check_webhook_reaches_the_watcher(s: stack.Stack) -> None:
    """An object written to the bucket makes the filer post to the watcher, which counts it
    (its /metrics, reached through the watcher's Service from this host)."""
    watcher = _watcher_url(s)
    before = _webhook_events(watcher)
    boto3.client(
        "s3",
        endpoint_url=s.s3_endpoint,
        aws_access_key_id=s.access_key,
        aws_secret_access_key=s.secret_key,
        region_name="us-east-1",
        config=Config(s3={"addressing_style": "path"}),
    ).put_object(Bucket=s.bucket, Key=f"elsewhere/{time.time_ns()}.txt", Body=b"x")
    eventually(lambda: _webhook_events(watcher) > before, 30, "the filer's webhook post")


def _watcher_url(s: stack.Stack) -> str:
    api = config.new_client_from_config(config_file=str(s.kubeconfig))
    selector = f"app.kubernetes.io/instance={s.release},app.kubernetes.io/component=watcher"
    [service] = (
        client.CoreV1Api(api).list_namespaced_service(s.namespace, label_selector=selector).items
    )
    return f"http://{service.spec.cluster_ip}:{service.spec.ports[0].port}"


def _webhook_events(base: str) -> float:
    """The watcher's count of filer webhook records received."""
    with urllib.request.urlopen(f"{base}/metrics", timeout=10) as response:
        metrics = response.read().decode()
    prefix = 'stereo_watcher_events_received_total{source="seaweedfs-webhook"}'
    return sum(float(line.split()[-1]) for line in metrics.splitlines() if line.startswith(prefix))
