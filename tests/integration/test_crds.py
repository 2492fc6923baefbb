"""The CRDs on a real API server: valid objects are stored, bad manifests are refused
with a message that names the field."""

from __future__ import annotations

import copy
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from tests.integration.kube import kubectl


def videojob(name: str = "film", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "stereo.dev/v1alpha1",
        "kind": "VideoJob",
        "metadata": {"name": name},
        "spec": {"source": "s3://films/in/movie.mp4", "format": "half-sbs", **spec},
    }


def apply(
    kubeconfig: Path, namespace: str, manifest: dict[str, Any]
) -> subprocess.CompletedProcess[str]:
    return kubectl(kubeconfig, "apply", "-n", namespace, "-f", "-", stdin=yaml.safe_dump(manifest))


def test_valid_videojob_is_stored_with_defaults(
    crds: None, kubeconfig: Path, namespace: str, api: client.ApiClient
) -> None:
    result = apply(kubeconfig, namespace, videojob())
    assert result.returncode == 0, result.stderr
    obj = client.CustomObjectsApi(api).get_namespaced_custom_object(
        "stereo.dev", "v1alpha1", namespace, "videojobs", "film"
    )
    assert obj["spec"]["stereo"]["divergence"] == 2.0
    assert obj["spec"]["segmentSeconds"] == 300
    assert obj["spec"]["backend"]["type"] == "job"
    listed = kubectl(kubeconfig, "get", "vj", "-n", namespace)
    assert listed.returncode == 0, listed.stderr
    header = listed.stdout.splitlines()[0].split()
    assert header[:5] == ["NAME", "PHASE", "PROGRESS", "FORMAT", "AGE"]
    assert "half-sbs" in listed.stdout
    by_category = kubectl(kubeconfig, "get", "stereo", "-n", namespace)
    assert "videojob.stereo.dev/film" in by_category.stdout


def test_valid_segment_is_stored(crds: None, kubeconfig: Path, namespace: str) -> None:
    segment = {
        "apiVersion": "stereo.dev/v1alpha1",
        "kind": "Segment",
        "metadata": {"name": "film-00000"},
        "spec": {
            "videoJob": "film",
            "videoJobUid": "0b5f8e8c-2d7c-4b8e-9a51-0f6c7f0e1a2b",
            "index": 0,
            "inputUri": "s3://b/ns/film/uid/segments/00000/input.mp4",
            "outputUri": "s3://b/ns/film/uid/segments/00000/output.mp4",
            "startFrame": 0,
            "frameCount": 48,
            "startSeconds": 0.0,
            "durationSeconds": 2.0,
            "format": "half-sbs",
        },
    }
    result = apply(kubeconfig, namespace, segment)
    assert result.returncode == 0, result.stderr
    listed = kubectl(kubeconfig, "get", "seg", "-n", namespace)
    assert "film-00000" in listed.stdout


BAD_MANIFESTS = {
    "unknown format": (videojob(format="side-by-side"), "spec.format"),
    "segment length zero": (videojob(segmentSeconds=0), "spec.segmentSeconds"),
    "divergence out of range": (videojob(stereo={"divergence": 50}), "spec.stereo.divergence"),
    "missing source": (
        {**videojob(), "spec": {"format": "half-sbs"}},
        "spec.source",
    ),
    "http backend without url": (videojob(backend={"type": "http"}), "http"),
    "name too long": (videojob(name="a" * 41), "40"),
    "unknown field": (videojob(colour="teal"), "colour"),
    "parallelism of a wrong type": (videojob(parallelism="many"), "spec.parallelism"),
}


@pytest.mark.parametrize("case", sorted(BAD_MANIFESTS))
def test_bad_manifest_is_refused_naming_the_field(
    crds: None, kubeconfig: Path, namespace: str, case: str
) -> None:
    manifest, field = BAD_MANIFESTS[case]
    result = apply(kubeconfig, namespace, copy.deepcopy(manifest))
    assert result.returncode != 0, f"{case}: accepted"
    assert field in result.stderr, f"{case}: {result.stderr}"


@pytest.mark.parametrize(
    "field,value", [("source", "s3://films/in/other.mp4"), ("format", "anaglyph")]
)
def test_source_and_format_are_immutable(
    crds: None, kubeconfig: Path, namespace: str, field: str, value: str
) -> None:
    assert apply(kubeconfig, namespace, videojob()).returncode == 0
    changed = videojob()
    changed["spec"][field] = value
    result = apply(kubeconfig, namespace, changed)
    assert result.returncode != 0
    assert f"{field} is immutable" in result.stderr


def test_mutable_fields_can_change(crds: None, kubeconfig: Path, namespace: str) -> None:
    assert apply(kubeconfig, namespace, videojob()).returncode == 0
    result = apply(kubeconfig, namespace, videojob(suspend=True, parallelism=8))
    assert result.returncode == 0, result.stderr
