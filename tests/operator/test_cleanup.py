"""Deleting a VideoJob: stop its Jobs, delete its files, never hang on broken storage."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from stereo_operator import handlers
from stereo_operator.storage import Workspace
from stereo_storage import StorageUnavailable
from tests.operator.factories import CONFIG, REF, attempt_job


class FakeKube:
    def __init__(self) -> None:
        self.deleted_for: list[str] = []

    def delete_jobs_of(self, namespace: str, uid: str) -> None:
        self.deleted_for.append(uid)


class BrokenWorkspace(Workspace):
    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def delete_intermediates(self, prefix_uri: str, keep_uri: str | None) -> int:
        self.calls += 1
        raise StorageUnavailable("connection refused", uri=prefix_uri)


def body(workspace: Path, **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"namespace": REF.namespace, "name": REF.name, "uid": REF.uid},
        "spec": {"source": "file:///in.mp4", "workspace": workspace.as_uri(), **spec},
    }


def runtime(workspace: Workspace, kube: FakeKube) -> Any:
    return handlers.Runtime(config=CONFIG, kube=kube, workspace=workspace, pool=None)  # type: ignore[arg-type]


@pytest.fixture
def warnings(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    posted: list[str] = []
    monkeypatch.setattr(handlers.kopf, "warn", lambda _b, reason, message: posted.append(reason))
    monkeypatch.setattr(handlers, "STORAGE_RETRY_DELAY", 0.0)
    return posted


def test_unreachable_storage_is_tried_a_few_times_then_let_go(
    tmp_path: Path, warnings: list[str]
) -> None:
    workspace = BrokenWorkspace()
    rt = runtime(workspace, FakeKube())
    asyncio.run(handlers.cleanup_videojob(rt, body(tmp_path), {}))
    assert workspace.calls == CONFIG.cleanup_attempts
    assert warnings == ["CleanupFailed"]


def test_files_go_and_the_final_output_stays(tmp_path: Path, warnings: list[str]) -> None:
    folder = tmp_path / REF.namespace / REF.name / REF.uid
    for rel in ("plan.json", "segments/00000/output.mp4", "final.mp4"):
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_bytes(b"x")
    kube = FakeKube()
    asyncio.run(handlers.cleanup_videojob(runtime(Workspace(), kube), body(tmp_path), {}))
    assert sorted(p.name for p in folder.rglob("*") if p.is_file()) == ["final.mp4"]
    assert kube.deleted_for == []  # no Jobs left to stop
    assert warnings == []


def test_jobs_are_stopped_before_files_go(
    tmp_path: Path, warnings: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(handlers, "JOB_STOP_WAIT_SECONDS", 0.2)
    kube = FakeKube()
    index = {REF.uid: [attempt_job(0, 1)]}  # never goes: the wait is bounded
    asyncio.run(
        handlers.cleanup_videojob(
            runtime(Workspace(), kube), body(tmp_path, output={"keepOnDelete": False}), index
        )
    )
    assert kube.deleted_for == [REF.uid]
