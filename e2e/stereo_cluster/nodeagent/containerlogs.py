"""Containers' stdout and stderr, kept as a kubelet keeps them, and read back for
`kubectl logs`.

Each container instance (each restart) gets its own file, `<pod dir>/logs/<container>/<n>.log`
with n its restart count, in the CRI log format a container runtime writes: one entry per line,
`<RFC 3339 time with nanoseconds> <stdout|stderr> <F|P> <content>`, where P marks a piece of a
line longer than 16 KiB. Only the current and the previous instance are kept.
"""

from __future__ import annotations

import collections
import datetime
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

_MAX_LINE = 16 * 1024  # the kubelet's split size for long lines
_READ = 64 * 1024


def instance_path(pod_dir: Path, container: str, instance: int) -> Path:
    return pod_dir / "logs" / container / f"{instance}.log"


def instances(pod_dir: Path, container: str) -> list[int]:
    """The container's instances that have a log, oldest first."""
    folder = pod_dir / "logs" / container
    if not folder.is_dir():
        return []
    return sorted(int(p.stem) for p in folder.glob("*.log") if p.stem.isdigit())


def _timestamp() -> str:
    ns = time.time_ns()
    seconds = datetime.datetime.fromtimestamp(ns // 1_000_000_000, datetime.UTC)
    return f"{seconds:%Y-%m-%dT%H:%M:%S}.{ns % 1_000_000_000:09d}Z"


class LogCopier:
    """Copies a started process's stdout and stderr pipes into its instance's log file, an
    entry per line, stamped with the time the agent read it."""

    def __init__(self, path: Path, streams: dict[str, IO[bytes]]) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._out = open(path, "ab")  # noqa: SIM115 - closed when both streams ended
        self._lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._copy, args=(name, pipe), daemon=True)
            for name, pipe in streams.items()
        ]
        self._left = len(self._threads)
        # Set when both streams ended, or when the runner gave up waiting for them (a
        # process the container left behind may hold a pipe open).
        self.done = threading.Event()
        for thread in self._threads:
            thread.start()

    def _copy(self, stream: str, pipe: IO[bytes]) -> None:
        pending = b""
        try:
            while chunk := os.read(pipe.fileno(), _READ):
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    self._write_line(stream, line)
                while len(pending) > _MAX_LINE:
                    self._write(stream, b"P", pending[:_MAX_LINE])
                    pending = pending[_MAX_LINE:]
            if pending:
                self._write(stream, b"F", pending)
        finally:
            pipe.close()
            self._stream_ended()

    def _write_line(self, stream: str, line: bytes) -> None:
        while len(line) > _MAX_LINE:
            self._write(stream, b"P", line[:_MAX_LINE])
            line = line[_MAX_LINE:]
        self._write(stream, b"F", line)

    def _write(self, stream: str, tag: bytes, content: bytes) -> None:
        entry = b"%s %s %s %s\n" % (_timestamp().encode(), stream.encode(), tag, content)
        with self._lock:
            self._out.write(entry)
            self._out.flush()

    def _stream_ended(self) -> None:
        with self._lock:
            self._left -= 1
            if self._left == 0:
                self._out.close()
                self.done.set()

    def wait(self, timeout: float) -> None:
        """Wait for the last lines of an exited process, then consider the log complete."""
        self.done.wait(timeout)
        self.done.set()


def start_copier(
    pod_dir: Path, container: str, instance: int, streams: dict[str, IO[bytes]]
) -> LogCopier:
    """A copier for a new instance, removing the logs of instances before the previous one."""
    for old in instances(pod_dir, container):
        if old < instance - 1:
            instance_path(pod_dir, container, old).unlink(missing_ok=True)
    return LogCopier(instance_path(pod_dir, container, instance), streams)


# --- reading -------------------------------------------------------------------------------


def last_text(path: Path, max_bytes: int, max_lines: int) -> str:
    """The end of an instance's output as plain text (for a termination message)."""
    if not path.is_file():
        return ""
    with open(path, "rb") as log_file:
        log_file.seek(0, os.SEEK_END)
        # Each entry carries a prefix of about 40 bytes: read enough entries for max_lines.
        start = max(0, log_file.tell() - max_bytes - 64 * max_lines)
        log_file.seek(start)
        lines = log_file.read().split(b"\n")[1 if start else 0 :]  # from a whole entry
    entries = [e for e in map(Entry.parse, lines) if e is not None]
    text = b"".join(e.content if e.partial else e.content + b"\n" for e in entries)
    return "\n".join(text[-max_bytes:].decode(errors="replace").splitlines()[-max_lines:])


@dataclass(frozen=True)
class Entry:
    time: str
    stream: str
    partial: bool
    content: bytes

    @classmethod
    def parse(cls, line: bytes) -> Entry | None:
        parts = line.rstrip(b"\n").split(b" ", 3)
        if len(parts) < 3:
            return None
        content = parts[3] if len(parts) == 4 else b""
        return cls(parts[0].decode(), parts[1].decode(), parts[2] == b"P", content)

    @property
    def seconds(self) -> float:
        head, _, fraction = self.time.rstrip("Z").partition(".")
        moment = datetime.datetime.strptime(head, "%Y-%m-%dT%H:%M:%S")
        return moment.replace(tzinfo=datetime.UTC).timestamp() + float(f"0.{fraction or 0}")


class LogQueryError(ValueError):
    """A query parameter `kubectl logs` sent that this node cannot honour as given."""


def _flag(query: dict[str, list[str]], name: str) -> bool:
    value = query.get(name, ["false"])[-1].lower()
    if value not in ("true", "false", "1", "0", ""):
        raise LogQueryError(f"{name}={value!r} is not a boolean")
    return value in ("true", "1", "")


def _count(query: dict[str, list[str]], name: str) -> int | None:
    if name not in query:
        return None
    value = query[name][-1]
    if not value.isdigit():
        raise LogQueryError(f"{name}={value!r} is not a non-negative integer")
    return int(value)


@dataclass(frozen=True)
class LogQuery:
    """The PodLogOptions the API server passes on to the kubelet API."""

    follow: bool = False
    previous: bool = False
    timestamps: bool = False
    tail_lines: int | None = None
    limit_bytes: int | None = None
    since: float | None = None  # seconds since the epoch

    @classmethod
    def parse(cls, query: dict[str, list[str]]) -> LogQuery:
        since: float | None = None
        if (seconds := _count(query, "sinceSeconds")) is not None:
            since = time.time() - seconds
        if "sinceTime" in query:
            text = query["sinceTime"][-1]
            try:
                since = datetime.datetime.fromisoformat(text).timestamp()
            except ValueError:
                raise LogQueryError(f"sinceTime={text!r} is not an RFC 3339 time") from None
        return cls(
            follow=_flag(query, "follow"),
            previous=_flag(query, "previous"),
            timestamps=_flag(query, "timestamps"),
            tail_lines=_count(query, "tailLines"),
            limit_bytes=_count(query, "limitBytes"),
            since=since,
        )

    def render(self, entry: Entry) -> bytes:
        text = entry.content if entry.partial else entry.content + b"\n"
        return entry.time.encode() + b" " + text if self.timestamps else text

    def wanted(self, entry: Entry) -> bool:
        return self.since is None or entry.seconds >= self.since


class _Lines:
    """Complete entry lines of a file that may still be growing."""

    def __init__(self, path: Path) -> None:
        self._file = open(path, "rb")  # noqa: SIM115 - closed by close()
        self._pending = b""

    def read(self) -> Iterator[Entry]:
        data = self._pending + self._file.read()
        *lines, self._pending = data.split(b"\n")
        for line in lines:
            if (entry := Entry.parse(line)) is not None:
                yield entry

    def close(self) -> None:
        self._file.close()


def _tail(entries: Iterator[Entry], query: LogQuery) -> Iterator[Entry]:
    """The entries of the last `tailLines` lines (a line may span several P entries)."""
    if query.tail_lines is None:
        yield from entries
        return
    lines: collections.deque[list[Entry]] = collections.deque(maxlen=query.tail_lines)
    current: list[Entry] = []
    for entry in entries:
        current.append(entry)
        if not entry.partial:
            lines.append(current)
            current = []
    if query.tail_lines > 0 and current:
        lines.append(current)
    for line in lines:
        yield from line


def stream_log(
    path: Path,
    query: LogQuery,
    write: Callable[[bytes], None],
    copying: Callable[[], bool],
    poll: float = 0.2,
) -> None:
    """Write the log at `path` as `query` asks; with `follow`, keep writing what is added
    until `copying()` says the instance ended (its last lines included)."""
    budget = query.limit_bytes

    def emit(entries: Iterator[Entry]) -> bool:
        nonlocal budget
        for entry in entries:
            if not query.wanted(entry):
                continue
            data = query.render(entry)
            if budget is not None:
                data, budget = data[:budget], budget - len(data[:budget])
            write(data)
            if budget == 0:
                return False
        return True

    lines = _Lines(path)
    try:
        more = emit(_tail(lines.read(), query))
        while more and query.follow:
            ended = not copying()
            more = emit(lines.read())
            if ended:
                return
            time.sleep(poll)
    finally:
        lines.close()
