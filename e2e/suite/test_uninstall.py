"""`helm uninstall` leaves only what should stay: the CRDs and the final outputs. Runs last
(conftest orders it): the VideoJobs are deleted first, while the operator can still clean up
their intermediates, then the release goes."""

from __future__ import annotations

from typing import Any

import pytest

from stereo_cluster import stack

from .examples import Outputs
from .kube import Kube, eventually

pytestmark = pytest.mark.cluster

RELEASE_KINDS = (
    "deployments", "replicasets", "pods", "services", "configmaps", "secrets",
    "serviceaccounts", "roles", "rolebindings",
)  # fmt: skip
CLUSTER_KINDS = ("clusterroles", "clusterrolebindings", "clusterkopfpeerings")


def _keys(s3: Any, bucket: str, prefix: str) -> set[str]:
    keys: set[str] = set()
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys |= {o["Key"] for o in page.get("Contents", [])}
    return keys


def _pods(kube: Kube, namespace: str) -> str:
    """The pods left, with their phase and whether their deletion has begun."""
    pods = [
        f"{p['metadata']['name']} ({p['status'].get('phase')},"
        f" deleting since {p['metadata'].get('deletionTimestamp', 'never')})"
        for p in kube.items("pods", "-n", namespace)
    ]
    return f"pods left in {namespace}: {', '.join(pods)}"


def test_uninstall_leaves_only_crds_and_outputs(
    kube: Kube, target: stack.Stack, namespace: str, s3: Any, outputs: Outputs
) -> None:
    kube.kubectl("delete", "videojobs", "--all", "-n", namespace, "--wait", "--timeout=300s",
                 timeout=330)  # fmt: skip
    kube.helm("uninstall", target.release, "-n", target.namespace, "--wait", "--timeout", "300s")
    release = f"app.kubernetes.io/instance={target.release}"

    def release_gone() -> bool:
        return not kube.items(",".join(RELEASE_KINDS), "-n", target.namespace, "-l", release)

    eventually(release_gone, 120, lambda: f"objects of {release} left in {target.namespace}")
    assert not kube.items(",".join(CLUSTER_KINDS), "-l", release)
    for kind in ("videojobs", "segments", "jobs"):
        assert not kube.items(kind, "-n", namespace), f"{kind} left in {namespace}"
    # Pods of deleted Jobs go through their grace period after the Jobs are gone.
    eventually(lambda: not kube.items("pods", "-n", namespace), 120, lambda: _pods(kube, namespace))
    crds = {c["metadata"]["name"] for c in kube.items("crds")}
    assert {"videojobs.stereo.dev", "segments.stereo.dev"} <= crds

    # The workspace holds the final outputs only: no segments, plans or audio.
    bucket, _, prefix = target.workspace.removeprefix("s3://").partition("/")
    left = _keys(s3, bucket, f"{prefix}/{namespace}/".lstrip("/"))
    finals = {uri.removeprefix(f"s3://{bucket}/") for uri in outputs.uris.values()}
    assert left == finals
