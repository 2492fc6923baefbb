"""Watching a VideoJob: that the operator picked it up, and its way to Succeeded or Failed."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from rich.console import Console
from rich.progress import Progress

from stereo_types.labels import CLEANUP_FINALIZER
from stereo_types.videojob import VideoJobPhase
from stereoctl.errors import NotFound, OperatorNotRunning
from stereoctl.kube import Kube
from stereoctl.render import JobProgress, videojob_status

JsonDict = dict[str, Any]

# kopf adds the operator's finalizer on its first look at a VideoJob.
TERMINAL = (VideoJobPhase.SUCCEEDED, VideoJobPhase.FAILED)


def picked_up(videojob: JsonDict) -> bool:
    """Whether the operator has acted on the VideoJob (its finalizer or any status)."""
    finalizers = videojob["metadata"].get("finalizers") or []
    return CLEANUP_FINALIZER in finalizers or bool(videojob.get("status"))


def _until(
    probe: Callable[[], JsonDict | None], timeout: float, interval: float
) -> JsonDict | None:
    deadline = time.monotonic() + timeout
    while True:
        found = probe()
        if found is not None or time.monotonic() >= deadline:
            return found
        time.sleep(interval)


def wait_picked_up(kube: Kube, name: str, timeout: float, console: Console) -> JsonDict:
    def probe() -> JsonDict | None:
        videojob = kube.videojob(name)
        return videojob if picked_up(videojob) else None

    with console.status(f"waiting for the operator to pick up {name}"):
        found = _until(probe, timeout, 0.5)
    if found is None:
        raise OperatorNotRunning(
            f"the operator did not pick up VideoJob {kube.namespace}/{name} within "
            f"{timeout:g}s: is stereo-operator running and watching namespace "
            f"{kube.namespace}? (the VideoJob stays and starts once it is)"
        )
    return found


def follow(kube: Kube, name: str, console: Console, interval: float = 1.0) -> JsonDict:
    """Show the live progress until the VideoJob is Succeeded or Failed; return it."""
    with Progress(*JobProgress.columns(), console=console) as progress:
        bar = JobProgress(progress)
        while True:
            videojob = kube.videojob(name)
            bar.update(videojob)
            if videojob_status(videojob).phase in TERMINAL:
                return videojob
            time.sleep(interval)


def wait_deleted(kube: Kube, name: str, timeout: float, console: Console) -> bool:
    """Whether the VideoJob is gone within timeout seconds (the operator's cleanup ran)."""

    def probe() -> JsonDict | None:
        try:
            kube.videojob(name)
        except NotFound:
            return {}
        return None

    with console.status(f"waiting for the operator to stop and clean up {name}"):
        return _until(probe, timeout, 0.5) is not None
