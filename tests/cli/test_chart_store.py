"""The store from the Helm chart: stereoctl reads the operator ConfigMap and the credentials
Secret the operator Deployment mounts, as the chart renders them, and uploads there."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from stereoctl.errors import StoreError
from tests.cli.cli import run, write_config
from tests.operator.harness import ROOT, Harness
from tests.servers import MotoServer

pytest_plugins = ["tests.operator.harness"]
pytestmark = pytest.mark.cluster

BUCKET = "chart-store"
KEEP = {("ConfigMap", "operator"), ("Secret", None), ("Deployment", "operator")}


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoServer]:
    with MotoServer() as server:
        server.client("s3").create_bucket(Bucket=BUCKET)
        yield server


def _helm() -> str:
    tools = subprocess.run(
        [str(ROOT / "scripts" / "tools")], capture_output=True, text=True, timeout=1800
    )
    assert tools.returncode == 0, tools.stderr
    return next(
        line.split("=", 1)[1] for line in tools.stdout.splitlines() if line.startswith("HELM=")
    )


def _chart_objects(namespace: str, moto: MotoServer) -> list[dict[str, Any]]:
    """The chart's operator ConfigMap, storage Secret and operator Deployment (scaled to 0:
    the harness runs the operator)."""
    values = {
        "storage.kind": "seaweedfs",
        "storage.bucket": BUCKET,
        "storage.rootPrefix": "jobs",
        "storage.endpoint": moto.endpoint_url,
        "storage.devCredentials.accessKeyId": moto.access_key,
        "storage.devCredentials.secretAccessKey": moto.secret_key,
    }
    args = [f"--set={key}={value}" for key, value in values.items()]
    rendered = subprocess.run(
        [_helm(), "template", "stereo", str(ROOT / "charts" / "stereo-operator"),
         "--namespace", namespace, *args],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert rendered.returncode == 0, rendered.stderr
    docs = [doc for doc in yaml.safe_load_all(rendered.stdout) if doc]
    kept = []
    for doc in docs:
        component = doc["metadata"].get("labels", {}).get("app.kubernetes.io/component")
        if (doc["kind"], component) in KEEP:
            doc["metadata"]["namespace"] = namespace
            if doc["kind"] == "Deployment":
                doc["spec"]["replicas"] = 0
            kept.append(doc)
    assert len(kept) == 3, [(d["kind"], d["metadata"]["name"]) for d in kept]
    return kept


def _create(api: client.ApiClient, objects: list[dict[str, Any]]) -> None:
    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
    for obj in objects:
        namespace = obj["metadata"]["namespace"]
        if obj["kind"] == "ConfigMap":
            core.create_namespaced_config_map(namespace, obj)
        elif obj["kind"] == "Secret":
            core.create_namespaced_secret(namespace, obj)
        else:
            apps.create_namespaced_deployment(namespace, obj)


def test_submit_uploads_to_the_store_the_chart_configured(
    harness: Harness, api: client.ApiClient, moto: MotoServer, media: dict, tmp_path: Path
) -> None:
    namespace = harness.namespace
    _create(api, _chart_objects(namespace, moto))
    harness.start_operator()
    # No store in the file: only where the chart is.
    config = write_config(tmp_path / "c.yaml", harness.access.admin, namespace, namespace)

    result = run(
        "submit", str(media["4s"]), "--name", "charted", "--backend", "stub", config=config
    )
    assert result.code == 0, (result, harness.logs())
    key = f"jobs/_uploads/{namespace}/charted/four.mp4"
    body = moto.client("s3").get_object(Bucket=BUCKET, Key=key)["Body"].read()
    assert body == media["4s"].read_bytes()
    videojob = harness.videojob("charted")
    assert videojob is not None and videojob["spec"]["source"] == f"s3://{BUCKET}/{key}"


def test_no_store_anywhere(harness: Harness, media: dict, tmp_path: Path) -> None:
    """Neither a store in the file nor a chart in the operator namespace: a local file
    cannot go anywhere, and nothing is created."""
    namespace = harness.namespace
    config = write_config(tmp_path / "c.yaml", harness.access.admin, namespace, namespace)
    result = run("submit", str(media["4s"]), "--name", "nowhere", config=config)
    result.assert_one_line_error(StoreError.exit_code, "no object store configured")
    assert harness.videojob("nowhere") is None
