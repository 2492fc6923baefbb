"""Fixtures shared by every suite: the real local control plane and a namespace per test."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client, config

from stereo_cluster.cluster import LocalCluster


@pytest.fixture(scope="session")
def kubeconfig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A running cluster's admin kubeconfig: STEREO_TEST_KUBECONFIG if set, else a fresh one."""
    existing = os.environ.get("STEREO_TEST_KUBECONFIG")
    if existing:
        yield Path(existing)
        return
    cluster = LocalCluster(tmp_path_factory.mktemp("cluster"))
    cluster.up()
    try:
        yield cluster.kubeconfig
    finally:
        cluster.down()


@pytest.fixture(scope="session")
def api(kubeconfig: Path) -> client.ApiClient:
    return config.new_client_from_config(config_file=str(kubeconfig))


@pytest.fixture
def namespace(api: client.ApiClient) -> Iterator[str]:
    core = client.CoreV1Api(api)
    name = f"t-{uuid.uuid4().hex[:8]}"
    core.create_namespace({"metadata": {"name": name}})
    yield name
    core.delete_namespace(name)
