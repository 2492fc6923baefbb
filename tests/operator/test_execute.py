"""Making the writes: order, idempotent creates, what an error leaves for the next tick."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from stereo_operator.backends import backend_for
from stereo_operator.reconcile import Event, Fetched, reconcile
from stereo_operator.storage import Workspace
from stereo_operator.tick import Runtime, execute
from tests.operator.factories import CONFIG, attempt_job, running, running_status, segment, snapshot


class RecordingKube:
    def __init__(self, fail_segment_patches: bool = False) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.fail_segment_patches = fail_segment_patches

    def create_job(self, manifest: dict) -> bool:
        self.calls.append(("create_job", manifest["metadata"]["name"]))
        return True

    def create_segment(self, manifest: dict) -> bool:
        self.calls.append(("create_segment", manifest["metadata"]["name"]))
        return True

    def delete_job(self, namespace: str, name: str) -> bool:
        self.calls.append(("delete_job", name))
        return True

    def patch_segment_status(self, ns: str, name: str, patch: dict, rv: str | None = None) -> bool:
        if self.fail_segment_patches:
            raise RuntimeError("api down")
        self.calls.append(("patch_segment", name))
        return True

    def patch_videojob_status(self, ns: str, name: str, patch: dict) -> bool:
        self.calls.append(("patch_videojob", name))
        return True


def run(kube: RecordingKube, snap: Any) -> Any:
    backend = backend_for(snap.videojob.ref, snap.videojob.spec, CONFIG, [], kube)  # type: ignore[arg-type]
    actions = reconcile(snap, Fetched(), CONFIG)
    with ThreadPoolExecutor(4) as pool:
        rt = Runtime(config=CONFIG, kube=kube, workspace=Workspace(), pool=pool)  # type: ignore[arg-type]
        return actions, execute(rt, snap, backend, actions)


def test_a_launch_creates_the_job_before_recording_it_and_the_videojob_goes_last() -> None:
    kube = RecordingKube()
    snap = snapshot(vj_status=running_status(2), segments=[segment(0), segment(1)])
    _, outcome = run(kube, snap)
    assert not outcome.errors
    for index in (0, 1):
        name = f"movie-{index:05d}"
        job = next(i for i, c in enumerate(kube.calls) if c[0] == "create_job" and
                   c[1].startswith(name))  # fmt: skip
        patch = kube.calls.index(("patch_segment", name))
        assert job < patch
    assert kube.calls[-1] == ("patch_videojob", "movie")


def test_a_failed_segment_write_still_updates_the_videojob_and_is_reported() -> None:
    kube = RecordingKube(fail_segment_patches=True)
    failed = attempt_job(0, 1, state="failed")
    snap = snapshot(vj_status=running_status(1), segments=[running(0)], jobs_=[failed])
    actions, outcome = run(kube, snap)
    assert outcome.errors
    assert kube.calls[-1] == ("patch_videojob", "movie")
    # The segment's Warning is not posted: its write did not happen (the next tick redoes it).
    assert any(isinstance(e, Event) and e.segment is not None for e in actions.events)
    assert all(e.segment is None for e in outcome.events)
