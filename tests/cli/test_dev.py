"""`stereoctl dev`: the config it writes for the embedded stack, and status without a stack.

Bringing the whole stack up is the README smoke test's job, not this module's.
"""

from __future__ import annotations

import stat
import uuid
from pathlib import Path

import pytest
from kubernetes import client

from stereo_cluster.stack import Stack
from stereoctl import config as config_file
from stereoctl.dev import JOB_NAMESPACE, config_for
from tests.cli.cli import run
from tests.operator.harness import ClusterAccess

pytest_plugins = ["tests.operator.harness"]


def _stack(tmp_path: Path, kubeconfig: Path) -> Stack:
    return Stack(
        state_dir=tmp_path / "state",
        kubeconfig=kubeconfig,
        namespace="stereo-system",
        release="stereo",
        s3_endpoint="http://10.70.0.1:8333",
        bucket="stereo",
        access_key="stereo-ab12",
        secret_key="s3cr3t",
        workspace="s3://stereo/workspace",
    )


def test_status_without_a_stack(tmp_path: Path) -> None:
    result = run("dev", "status", "--state-dir", str(tmp_path), config=tmp_path / "c.yaml")
    assert result.code == 1, result
    assert "the embedded stack is not running" in result.stdout
    assert "Traceback" not in result.stderr


def test_the_written_config_points_at_the_stack(tmp_path: Path) -> None:
    stack = _stack(tmp_path, tmp_path / "admin.kubeconfig")
    path = tmp_path / "stereoctl" / "config.yaml"
    config_file.save(config_for(stack), path)

    assert stat.S_IMODE(path.stat().st_mode) == 0o600  # it holds the store's keys
    loaded = config_file.load(path)
    assert loaded.kubeconfig == str(stack.kubeconfig)
    assert loaded.namespace == JOB_NAMESPACE
    assert loaded.origin == f"stereoctl dev up {stack.state_dir}"
    store = loaded.store
    assert store is not None
    assert (store.root, store.endpoint, store.path_style) == (
        "s3://stereo/workspace",
        "http://10.70.0.1:8333",
        True,
    )
    storage = store.storage_config()
    credentials = storage.s3_credentials()
    assert credentials is not None
    assert (credentials.access_key_id, credentials.secret_access_key) == ("stereo-ab12", "s3cr3t")


@pytest.mark.cluster
def test_commands_use_the_cluster_the_config_names(
    cluster_access: ClusterAccess, api: client.ApiClient, tmp_path: Path
) -> None:
    """With only the file `dev up` writes (no --kubeconfig, no $KUBECONFIG), stereoctl talks
    to the cluster and namespace it names."""
    path = tmp_path / "config.yaml"
    config_file.save(config_for(_stack(tmp_path, cluster_access.admin)), path)
    name = f"dev-{uuid.uuid4().hex[:6]}"
    custom = client.CustomObjectsApi(api)
    body = {
        "apiVersion": "stereo.dev/v1alpha1",
        "kind": "VideoJob",
        "metadata": {"name": name},
        "spec": {"source": "s3://stereo/in.mp4"},
    }
    custom.create_namespaced_custom_object(
        "stereo.dev", "v1alpha1", JOB_NAMESPACE, "videojobs", body
    )
    try:
        result = run("list", config=path)
    finally:
        custom.delete_namespaced_custom_object(
            "stereo.dev", "v1alpha1", JOB_NAMESPACE, "videojobs", name
        )
    assert result.code == 0, result
    assert any(line.startswith(f"{name} ") for line in result.stdout.splitlines()), result
