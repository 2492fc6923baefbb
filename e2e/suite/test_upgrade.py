"""`helm upgrade` with a changed value while a VideoJob runs: the operator is replaced
mid-run (the config checksum rolls its Deployment) and the job still finishes."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from stereo_cluster import stack

from .checks import assert_output, describe, wait_finished
from .examples import EXAMPLES, Outputs, videojob_manifest
from .kube import Kube, eventually
from .media import SECONDS, Sample

pytestmark = pytest.mark.cluster

EXAMPLE = EXAMPLES / "half-sbs-builtin.yaml"


def _operator_pods(kube: Kube, target: stack.Stack) -> set[str]:
    selector = f"app.kubernetes.io/instance={target.release},app.kubernetes.io/component=operator"
    pods = kube.items("pods", "-n", target.namespace, "-l", selector)
    return {p["metadata"]["uid"] for p in pods if p["status"].get("phase") == "Running"}


def _max_inflight(kube: Kube, target: stack.Stack) -> int:
    selector = f"app.kubernetes.io/instance={target.release},app.kubernetes.io/component=operator"
    [config_map] = kube.items("configmaps", "-n", target.namespace, "-l", selector)
    return int(yaml.safe_load(config_map["data"]["config.yaml"])["maxInflight"])


def _upgrade(kube: Kube, target: stack.Stack, max_inflight: int) -> None:
    # Not --reuse-values: it would drop the defaults of keys a newer chart adds (null in the
    # operator's config); this takes the chart's defaults, then the release's own values.
    kube.helm(
        "upgrade", target.release, str(stack.CHART), "-n", target.namespace,
        "--reset-then-reuse-values", "--set", f"jobs.maxInflight={max_inflight}",
        "--wait", "--timeout", f"{stack.HELM_TIMEOUT}s",
    )  # fmt: skip


@pytest.fixture
def original_max_inflight(kube: Kube, target: stack.Stack) -> Iterator[int]:
    before = _max_inflight(kube, target)
    yield before
    if _max_inflight(kube, target) != before:
        _upgrade(kube, target, before)


def test_upgrade_mid_run_and_the_job_finishes(
    kube: Kube,
    target: stack.Stack,
    namespace: str,
    sample: Sample,
    s3: Any,
    original_max_inflight: int,
    outputs: Outputs,
    tmp_path: Path,
) -> None:
    manifest = videojob_manifest(EXAMPLE, namespace, sample.uri)
    name = f"upgrade-{uuid.uuid4().hex[:5]}"
    manifest["metadata"]["name"] = name
    # One-second segments one at a time: the upgrade lands while they run.
    manifest["spec"]["segmentSeconds"] = 1
    manifest["spec"]["parallelism"] = 1
    before = _operator_pods(kube, target)
    kube.apply(manifest)

    def running() -> bool:
        status = kube.get("videojob", name, namespace).get("status") or {}
        return status.get("phase") == "Running"

    eventually(running, 300, lambda: describe(kube, namespace, name))
    changed = 1 if original_max_inflight != 1 else 2
    _upgrade(kube, target, changed)
    phase_after_upgrade = kube.get("videojob", name, namespace)["status"]["phase"]

    assert _max_inflight(kube, target) == changed
    after = _operator_pods(kube, target)
    assert after and not after & before, "the operator pod was not replaced by the upgrade"
    assert phase_after_upgrade not in ("Succeeded", "Failed"), "finished before the upgrade"
    status = wait_finished(kube, namespace, name, 480)
    assert status["segmentsCompleted"] == status["segmentsTotal"] == SECONDS
    outputs.uris[name] = status["outputUri"]
    assert_output(s3, status["outputUri"], manifest, sample.probe, tmp_path)
