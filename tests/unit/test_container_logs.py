"""The node agent's container logs: the CRI-format files it writes from a process's pipes,
and the `kubectl logs` queries it answers from them (tests/integration/test_node_logs.py
goes through the real API server)."""

from __future__ import annotations

import subprocess
import threading
import time
from pathlib import Path

import pytest

from stereo_cluster.nodeagent.containerlogs import (
    Entry,
    LogQuery,
    LogQueryError,
    instance_path,
    instances,
    last_text,
    start_copier,
    stream_log,
)


def _run(pod_dir: Path, script: str, instance: int = 0) -> Path:
    """Run `script` with its output copied as a container instance's log; the log's path."""
    proc = subprocess.Popen(["sh", "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    copier = start_copier(pod_dir, "main", instance, {"stdout": proc.stdout, "stderr": proc.stderr})
    proc.wait(timeout=30)
    copier.wait(timeout=10)
    return copier.path


def _read(path: Path, **query: object) -> bytes:
    out: list[bytes] = []
    stream_log(path, LogQuery(**query), out.append, lambda: False)  # type: ignore[arg-type]
    return b"".join(out)


def test_entries_carry_time_stream_and_tag(tmp_path: Path) -> None:
    path = _run(tmp_path, "echo one; echo two >&2")
    entries = [e for e in map(Entry.parse, path.read_bytes().splitlines()) if e is not None]
    assert len(entries) == 2
    assert {(e.stream, e.partial, e.content) for e in entries} == {
        ("stdout", False, b"one"),
        ("stderr", False, b"two"),
    }
    stamp = entries[0].time
    assert len(stamp) == len("2026-01-01T00:00:00.123456789Z") and stamp.endswith("Z")
    assert abs(entries[0].seconds - time.time()) < 60


def test_long_lines_are_split_into_partial_entries_and_joined_back(tmp_path: Path) -> None:
    path = _run(tmp_path, "head -c 40000 /dev/zero | tr '\\0' x; echo; echo short")
    tags = [line.split(b" ")[2] for line in path.read_bytes().splitlines()]
    assert tags == [b"P", b"P", b"F", b"F"]  # 16 KiB + 16 KiB + the rest, then "short"
    assert _read(path) == b"x" * 40000 + b"\nshort\n"
    # tailLines counts lines, not entries.
    assert _read(path, tail_lines=2) == b"x" * 40000 + b"\nshort\n"
    assert _read(path, tail_lines=1) == b"short\n"


def test_tail_limit_timestamps_and_since(tmp_path: Path) -> None:
    path = _run(tmp_path, "for i in 1 2 3 4; do echo line-$i; done")
    assert _read(path, tail_lines=2) == b"line-3\nline-4\n"
    assert _read(path, tail_lines=0) == b""
    assert _read(path, limit_bytes=9) == b"line-1\nli"
    stamped = _read(path, timestamps=True).decode().splitlines()
    assert [line.split(" ", 1)[1] for line in stamped] == [f"line-{i}" for i in range(1, 5)]
    assert _read(path, since=time.time() + 60) == b""
    assert _read(path, since=time.time() - 60).count(b"\n") == 4


def test_a_line_without_newline_at_exit_is_kept(tmp_path: Path) -> None:
    path = _run(tmp_path, "printf 'no newline'")
    assert _read(path) == b"no newline\n"
    assert last_text(path, 2048, 80) == "no newline"


def test_last_text_is_the_plain_end_of_the_output(tmp_path: Path) -> None:
    path = _run(tmp_path, "i=0; while [ $i -lt 200 ]; do echo line-$i; i=$((i+1)); done")
    text = last_text(path, 2048, 80)
    assert text.splitlines() == [f"line-{i}" for i in range(120, 200)]
    assert last_text(tmp_path / "absent.log", 2048, 80) == ""


def test_follow_writes_what_is_added_until_the_instance_ends(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        ["sh", "-c", "echo a; sleep 0.5; echo b; sleep 0.5; echo c"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    copier = start_copier(tmp_path, "main", 0, {"stdout": proc.stdout, "stderr": proc.stderr})
    out: list[bytes] = []
    follower = threading.Thread(
        target=stream_log,
        args=(copier.path, LogQuery(follow=True), out.append, lambda: not copier.done.is_set()),
        kwargs={"poll": 0.05},
    )
    follower.start()
    follower.join(timeout=30)
    assert not follower.is_alive()
    assert b"".join(out) == b"a\nb\nc\n"
    proc.wait()


def test_only_the_current_and_previous_instances_are_kept(tmp_path: Path) -> None:
    for instance in range(4):
        _run(tmp_path, f"echo run-{instance}", instance)
    assert instances(tmp_path, "main") == [2, 3]
    assert _read(instance_path(tmp_path, "main", 2)) == b"run-2\n"


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"tailLines": ["-1"]}, "tailLines='-1' is not a non-negative integer"),
        ({"limitBytes": ["lots"]}, "limitBytes='lots' is not a non-negative integer"),
        ({"follow": ["maybe"]}, "follow='maybe' is not a boolean"),
        ({"sinceTime": ["yesterday"]}, "sinceTime='yesterday' is not an RFC 3339 time"),
    ],
)
def test_bad_query_parameters_are_named(query: dict[str, list[str]], message: str) -> None:
    with pytest.raises(LogQueryError) as caught:
        LogQuery.parse(query)
    assert str(caught.value) == message


def test_query_parameters_as_the_api_server_sends_them() -> None:
    query = LogQuery.parse(
        {"follow": ["true"], "tailLines": ["10"], "timestamps": ["true"], "previous": ["false"]}
    )
    assert (query.follow, query.tail_lines, query.timestamps, query.previous) == (
        True,
        10,
        True,
        False,
    )
    since = LogQuery.parse({"sinceTime": ["2026-01-01T00:00:00Z"]}).since
    assert since == 1767225600.0
