"""Fixtures of the end-to-end suite: the target cluster, its store, a namespace with the
store's Secret, the sample video in the bucket, and every runnable example submitted."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

from stereo_cluster import stack

from . import target as targets
from .examples import Outputs, runnable_examples, videojob_manifest
from .kube import Kube
from .media import Sample, make_sample, probe


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The uninstall test goes last: it removes what the others run on."""
    items.sort(key=lambda item: item.nodeid.startswith("e2e/suite/test_uninstall.py"))


@pytest.fixture(scope="session")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[stack.Stack]:
    """An existing cluster (STEREO_E2E_*), else the embedded stack on a private state dir."""
    existing = targets.from_environment()
    if existing is not None:
        yield existing
        return
    state_dir = tmp_path_factory.mktemp("stack")
    try:
        yield stack.up(state_dir)
    finally:
        stack.down(state_dir)


@pytest.fixture(scope="session")
def kube(target: stack.Stack) -> Kube:
    return Kube(target)


@pytest.fixture(scope="session")
def s3(target: stack.Stack) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=target.s3_endpoint,
        aws_access_key_id=target.access_key,
        aws_secret_access_key=target.secret_key,
        region_name="us-east-1",
        config=Config(s3={"addressing_style": "path"}),
    )


@pytest.fixture(scope="session")
def namespace(kube: Kube, target: stack.Stack) -> Iterator[str]:
    """Where the suite's VideoJobs run: the Jobs there need the store's Secret."""
    name = f"e2e-{uuid.uuid4().hex[:6]}"
    kube.apply(
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}},
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": targets.storage_secret(), "namespace": name},
            "type": "Opaque",
            "stringData": {
                "AWS_ACCESS_KEY_ID": target.access_key,
                "AWS_SECRET_ACCESS_KEY": target.secret_key,
            },
        },
    )
    yield name
    kube.kubectl("delete", "namespace", name, "--wait=false", "--ignore-not-found")


@pytest.fixture(scope="session")
def sample(s3: Any, target: stack.Stack, tmp_path_factory: pytest.TempPathFactory) -> Sample:
    """The generated sample, uploaded where the examples read it."""
    path = make_sample(tmp_path_factory.mktemp("sample") / "sample.mp4")
    key = "samples/sample.mp4"
    s3.upload_file(str(path), target.bucket, key)
    return Sample(uri=f"s3://{target.bucket}/{key}", probe=probe(path))


@pytest.fixture(scope="session")
def outputs() -> Outputs:
    return Outputs()


@pytest.fixture(scope="session")
def submitted(kube: Kube, namespace: str, sample: Sample) -> dict[Path, dict[str, Any]]:
    """Every runnable example applied at once (they run side by side, as users' jobs do)."""
    manifests = {p: videojob_manifest(p, namespace, sample.uri) for p in runnable_examples()}
    for manifest in manifests.values():
        kube.apply(manifest)
    return manifests
