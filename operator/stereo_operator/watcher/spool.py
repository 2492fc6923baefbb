"""A write-ahead spool for webhook events, for senders that do not retry.

SeaweedFS 4.48's filer webhook posts each event once: a failed post (503, a reset
connection) goes straight to its dead-letter log, whatever max_retries says. With a spool
directory configured, the watcher writes every accepted webhook body to disk (fsync) before
applying it, answers 202 when the API server cannot be reached (the event is the watcher's
to retry now), and deletes the file once the event is applied or deliberately ignored. A
watcher killed mid-way finds the file at start and applies it then.

Mount the directory on a volume that outlives the container (an emptyDir survives container
restarts; a PersistentVolume survives rescheduling).
"""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

_SUFFIX = ".event"


@dataclass(frozen=True, slots=True)
class SpoolEntry:
    path: Path
    source: str
    body: bytes


class Spool:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        # Half-written files of a killed watcher were never acknowledged: drop them.
        for stale in directory.glob("*.tmp"):
            stale.unlink(missing_ok=True)

    def put(self, source: str, body: bytes) -> SpoolEntry:
        """Store body durably; the file name orders entries by arrival."""
        name = f"{time.time_ns():020d}-{uuid.uuid4().hex[:8]}.{source}{_SUFFIX}"
        final = self.directory / name
        tmp = final.with_name(name + ".tmp")
        with open(tmp, "wb") as handle:
            handle.write(body)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, final)
        self._sync_directory()
        return SpoolEntry(final, source, body)

    def remove(self, entry: SpoolEntry) -> None:
        entry.path.unlink(missing_ok=True)

    def pending(self) -> list[SpoolEntry]:
        entries = []
        for path in sorted(self.directory.glob(f"*{_SUFFIX}")):
            source = path.name[: -len(_SUFFIX)].partition(".")[2]
            try:
                entries.append(SpoolEntry(path, source, path.read_bytes()))
            except FileNotFoundError:
                continue  # removed meanwhile
        return entries

    def __len__(self) -> int:
        return sum(1 for _ in self.directory.glob(f"*{_SUFFIX}"))

    def _sync_directory(self) -> None:
        with contextlib.suppress(OSError):
            fd = os.open(self.directory, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
