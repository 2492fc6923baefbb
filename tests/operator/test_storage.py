"""Workspace reads and cleanup, on file:// storage."""

from __future__ import annotations

from pathlib import Path

import pytest

from stereo_operator.storage import PlanUnreadable, Workspace
from tests.operator.factories import plan


def touch(path: Path, data: bytes = b"x") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def test_cleanup_keeps_the_final_output_inside_the_folder(tmp_path: Path) -> None:
    folder = tmp_path / "ns" / "vj" / "uid"
    for rel in ("segments/00000/input.mp4", "segments/00000/output.mp4", "audio.mka",
                "plan.json", "final.mp4"):  # fmt: skip
        touch(folder / rel)
    workspace = Workspace()
    deleted = workspace.delete_intermediates(folder.as_uri(), (folder / "final.mp4").as_uri())
    assert deleted == 4
    assert sorted(p.name for p in folder.rglob("*") if p.is_file()) == ["final.mp4"]


def test_cleanup_without_keeping_removes_everything(tmp_path: Path) -> None:
    folder = tmp_path / "vj"
    touch(folder / "segments/00001/output.mp4")
    touch(folder / "final.mp4")
    touch(tmp_path / "vj-other" / "keep.mp4")  # shares the name as a prefix
    Workspace().delete_intermediates(folder.as_uri(), None)
    assert not list(folder.rglob("*.mp4"))
    assert (tmp_path / "vj-other" / "keep.mp4").exists()


def test_cleanup_keeps_a_final_output_in_a_sub_folder_and_only_that(tmp_path: Path) -> None:
    folder = tmp_path / "vj"
    for rel in ("out/final.mp4", "out/final.mp4.part", "out/other.mp4", "outside/x.mp4",
                "final.mp4"):  # fmt: skip
        touch(folder / rel)
    deleted = Workspace().delete_intermediates(folder.as_uri(), (folder / "out/final.mp4").as_uri())
    assert deleted == 4
    assert [p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()] == [
        "out/final.mp4"
    ]


def test_delete_object_takes_only_that_object(tmp_path: Path) -> None:
    touch(tmp_path / "movie.mp4")
    touch(tmp_path / "movie.mp4.bak")
    workspace = Workspace()
    workspace.delete_object((tmp_path / "movie.mp4").as_uri())
    assert not (tmp_path / "movie.mp4").exists()
    assert (tmp_path / "movie.mp4.bak").exists()
    workspace.delete_object((tmp_path / "movie.mp4").as_uri())  # already gone: fine


def test_read_plan_parses_and_caches(tmp_path: Path) -> None:
    path = tmp_path / "plan.json"
    path.write_text(plan(2).model_dump_json(by_alias=True))
    workspace = Workspace()
    assert len(workspace.read_plan(path.as_uri()).segments) == 2
    path.unlink()
    assert len(workspace.read_plan(path.as_uri()).segments) == 2  # immutable once written
    workspace.forget_plan(path.as_uri())
    with pytest.raises(PlanUnreadable, match="cannot read"):
        workspace.read_plan(path.as_uri())


def test_invalid_plan_is_unreadable(tmp_path: Path) -> None:
    path = tmp_path / "plan.json"
    path.write_text('{"segments": "nope"}')
    with pytest.raises(PlanUnreadable, match="invalid"):
        Workspace().read_plan(path.as_uri())


def test_stat(tmp_path: Path) -> None:
    touch(tmp_path / "o.mp4", b"12345")
    found = Workspace().stat((tmp_path / "o.mp4").as_uri())
    assert found is not None and found.size == 5 and found.updated is not None
    assert Workspace().stat((tmp_path / "none.mp4").as_uri()) is None


def test_read_seams_absent_invalid_and_present(tmp_path: Path) -> None:
    workspace = Workspace()
    path = tmp_path / "seams.json"
    assert workspace.read_seams(path.as_uri()) is None  # no engine wrote depth traces
    path.write_text('{"score": -1}')
    assert workspace.read_seams(path.as_uri()) is None
    path.write_text('{"score": 2.5, "worstSegment": 3, "medianScore": 1.0, "seams": 4}')
    score = workspace.read_seams(path.as_uri())
    assert score is not None and (score.score, score.worst_segment) == (2.5, 3)
