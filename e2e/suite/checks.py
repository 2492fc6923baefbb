"""What a finished VideoJob must show: Succeeded, completions from storage events, and an
output with every source frame, the chosen format's frame size and the source's audio."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from stereo_infer.engines.formats import output_size
from stereo_types.formats import OutputFormat

from .kube import Kube, eventually
from .media import Probe, probe

# Completions an event source reported; `reconcile` is the operator's own check (safety net).
EVENT_SOURCES = {"sqs", "pubsub", "minio-webhook", "seaweedfs-webhook"}
AUDIO_TOLERANCE_SECONDS = 0.1


def describe(kube: Kube, namespace: str, name: str) -> str:
    """The VideoJob's status and its segments' phases, for a failure message."""
    vj = kube.get("videojob", name, namespace)
    segments = {
        s["metadata"]["name"]: (s.get("status") or {}).get("phase")
        for s in kube.items("segments", "-n", namespace, "-l", f"stereo.dev/videojob={name}")
    }
    return f"VideoJob {name}: {json.dumps(vj.get('status'))}; segments: {segments}"


def wait_finished(kube: Kube, namespace: str, name: str, timeout: float) -> dict[str, Any]:
    """The status once Succeeded; fails with the status message if it failed instead."""

    def finished() -> dict[str, Any] | None:
        status: dict[str, Any] = kube.get("videojob", name, namespace).get("status") or {}
        return status if status.get("phase") in ("Succeeded", "Failed") else None

    status = eventually(finished, timeout, lambda: describe(kube, namespace, name))
    assert status["phase"] == "Succeeded", describe(kube, namespace, name)
    return status


def assert_completions_from_events(kube: Kube, namespace: str, name: str, total: int) -> None:
    segments = kube.items("segments", "-n", namespace, "-l", f"stereo.dev/videojob={name}")
    assert len(segments) == total
    sources = {s["metadata"]["name"]: s["status"]["completion"]["source"] for s in segments}
    assert set(sources.values()) <= EVENT_SOURCES, sources


def expected_size(manifest: dict[str, Any], source: Probe) -> tuple[int, int]:
    """The stub backend copies the source; an engine packs the two views per the format."""
    if manifest["spec"].get("backend", {}).get("type") == "stub":
        return source.width, source.height
    fmt = OutputFormat(manifest["spec"].get("format", "half-sbs"))
    size = output_size(fmt, source.width, source.height)
    return size.width, size.height


def assert_output(s3: Any, uri: str, manifest: dict[str, Any], source: Probe, tmp: Path) -> None:
    bucket, key = uri.removeprefix("s3://").split("/", 1)
    local = tmp / Path(key).name
    s3.download_file(bucket, key, str(local))
    out = probe(local)
    assert out.frames == source.frames
    assert (out.width, out.height) == expected_size(manifest, source)
    assert out.audio_seconds is not None, f"{uri} has no audio"
    assert source.audio_seconds is not None
    assert abs(out.audio_seconds - source.audio_seconds) <= AUDIO_TOLERANCE_SECONDS, (
        out.audio_seconds,
        source.audio_seconds,
    )
