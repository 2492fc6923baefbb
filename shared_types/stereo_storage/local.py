"""file:// on a shared volume (NFS, a PVC mounted by every pod)."""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import BinaryIO, NoReturn

from .base import (
    CHUNK,
    TEMP_PREFIX,
    ObjectStat,
    ObjectStore,
    ProgressCallback,
    StrPath,
    atomic_target,
    empty_range,
    require_prefix,
)
from .config import StorageConfig
from .errors import AccessDenied, ObjectNotFound, StorageError, StorageUnavailable

_COPY_BUFFER = 4 * 1024 * 1024
# Errors a network filesystem gives while a server or link is away.
_TRANSIENT_ERRNOS = {
    errno.EIO,
    errno.ESTALE,
    errno.ETIMEDOUT,
    errno.ENOTCONN,
    errno.EHOSTDOWN,
    errno.EHOSTUNREACH,
    errno.ECONNREFUSED,
    errno.ECONNRESET,
    errno.EAGAIN,
}


def _translate(exc: OSError, uri: str) -> NoReturn:
    msg = f"{uri}: {exc.strerror or exc}"
    if isinstance(exc, FileNotFoundError | NotADirectoryError | IsADirectoryError):
        raise ObjectNotFound(msg, uri=uri) from exc
    if isinstance(exc, PermissionError) or exc.errno == errno.EROFS:
        raise AccessDenied(msg, uri=uri) from exc
    if exc.errno in _TRANSIENT_ERRNOS:
        raise StorageUnavailable(msg, uri=uri) from exc
    raise StorageError(msg, uri=uri) from exc


def _copy(src: BinaryIO, dst: Path, progress: ProgressCallback | None = None) -> None:
    # Stream in bounded chunks and fsync, so the rename that follows publishes
    # complete, durable bytes even on NFS.
    with dst.open("wb") as fout:
        while chunk := src.read(_COPY_BUFFER):
            fout.write(chunk)
            if progress is not None:
                progress(len(chunk))
        fout.flush()
        os.fsync(fout.fileno())


class LocalStore(ObjectStore):
    scheme = "file"

    def __init__(self, config: StorageConfig | None = None) -> None:
        self.config = config or StorageConfig()
        root = self.config.local_root
        self._root = Path(os.path.abspath(root)) if root is not None else None

    def path_of(self, uri: str) -> Path:
        # Paths are taken verbatim, without percent-decoding, just as s3:// and
        # gs:// keys are: "file:///v/a b" and "s3://b/a b" name the same key.
        rest = uri[len("file://") :] if uri[:7].lower() == "file://" else None
        if rest is not None and rest.startswith("localhost/"):
            rest = rest[len("localhost") :]
        if rest is None or not rest.startswith("/"):
            raise StorageError(f"expected an absolute local file:// URI, got {uri!r}", uri=uri)
        # Normalise away "..", then hold the path inside the configured root.
        path = Path(os.path.normpath(rest))
        if self._root is not None:
            if not self._root.is_dir():
                raise StorageUnavailable(f"volume {self._root} is not mounted", uri=uri)
            if path != self._root and self._root not in path.parents:
                raise AccessDenied(f"{uri!r} is outside {self._root}", uri=uri)
        return path

    @staticmethod
    def uri_of(path: Path) -> str:
        return f"file://{path}"

    def _stat_path(self, path: Path, uri: str) -> ObjectStat:
        st = path.stat()
        return ObjectStat(
            uri=uri,
            size=st.st_size,
            # Cheap change detector; hashing would read the whole file.
            etag=f"{st.st_mtime_ns:x}-{st.st_size:x}",
            generation=str(st.st_mtime_ns),
            updated=datetime.fromtimestamp(st.st_mtime, UTC),
        )

    def stat(self, uri: str) -> ObjectStat | None:
        path = self.path_of(uri)
        try:
            if not path.is_file():
                return None
            return self._stat_path(path, uri)
        except FileNotFoundError:
            return None
        except OSError as exc:
            _translate(exc, uri)

    def upload_file(
        self, local_path: StrPath, uri: str, progress: ProgressCallback | None = None
    ) -> None:
        path = self.path_of(uri)
        # Opened outside the translation: a missing source is the caller's error.
        with open(local_path, "rb") as src:
            try:
                with atomic_target(path) as tmp:
                    _copy(src, tmp, progress)
            except OSError as exc:
                _translate(exc, uri)

    def download_file(
        self, uri: str, local_path: StrPath, progress: ProgressCallback | None = None
    ) -> None:
        path = self.path_of(uri)
        try:
            with path.open("rb") as src, atomic_target(local_path) as tmp:
                _copy(src, tmp, progress)
        except OSError as exc:
            _translate(exc, uri)

    def read_range(self, uri: str, start: int, end: int | None = None) -> Iterator[bytes]:
        path = self.path_of(uri)
        left = 0 if empty_range(start, end) else None if end is None else end - start
        try:
            with path.open("rb") as src:
                src.seek(start)  # past the end is allowed: reads then return b""
                while left is None or left > 0:
                    chunk = src.read(CHUNK if left is None else min(CHUNK, left))
                    if not chunk:
                        return
                    if left is not None:
                        left -= len(chunk)
                    yield chunk
        except OSError as exc:
            _translate(exc, uri)

    def _walk(self, prefix: str) -> Iterator[Path]:
        base = prefix if prefix.endswith("/") else os.path.dirname(prefix)
        for dirpath, dirnames, filenames in os.walk(base):
            # Skip directories that cannot hold matches; compare with a trailing
            # slash so "/a/b" matches the prefix "/a/b/".
            dirnames[:] = [
                d
                for d in dirnames
                if os.path.join(dirpath, d, "").startswith(prefix)
                or prefix.startswith(os.path.join(dirpath, d, ""))
            ]
            for name in filenames:
                full = os.path.join(dirpath, name)
                if not name.startswith(TEMP_PREFIX) and full.startswith(prefix):
                    yield Path(full)

    def list_prefix(self, uri: str) -> Iterator[ObjectStat]:
        prefix = self._prefix_of(uri)
        # Sorted to match the lexicographic listings of S3 and GCS.
        for path in sorted(self._walk(prefix), key=str):
            try:
                yield self._stat_path(path, self.uri_of(path))
            except FileNotFoundError:
                continue  # deleted while listing
            except OSError as exc:
                _translate(exc, uri)

    def delete(self, uri: str) -> None:
        path = self.path_of(uri)
        if uri.endswith("/") or path.is_dir():
            raise StorageError(f"{uri!r} names a folder, not an object", uri=uri)
        try:
            path.unlink()
        except (FileNotFoundError, NotADirectoryError):
            return  # gone already (or a parent is a file: no such object either)
        except OSError as exc:
            _translate(exc, uri)

    def delete_prefix(self, uri: str) -> int:
        prefix = self._prefix_of(uri)
        require_prefix(uri, prefix)
        if self._root is not None and Path(prefix) == self._root:
            require_prefix(uri, "")  # the whole volume: refuse, as for a bucket
        deleted = 0
        emptied: set[Path] = set()
        try:
            for path in list(self._walk(prefix)):
                try:
                    path.unlink()
                    deleted += 1
                except FileNotFoundError:
                    pass
                # Object stores have no empty folders: drop the ones under the
                # prefix that this leaves empty.
                parent = path.parent
                while parent != parent.parent and f"{parent}/".startswith(prefix):
                    emptied.add(parent)
                    parent = parent.parent
        except OSError as exc:
            _translate(exc, uri)
        for folder in sorted(emptied, key=lambda p: len(p.parts), reverse=True):
            if folder == self._root:
                continue
            # Not empty, busy (a mount point) or already gone: leave it.
            with contextlib.suppress(OSError):
                folder.rmdir()
        return deleted

    def _prefix_of(self, uri: str) -> str:
        path = str(self.path_of(uri))
        # normpath drops a trailing slash; keep it, it means "inside this folder".
        return path + "/" if uri.endswith("/") and not path.endswith("/") else path

    def presigned_url(self, uri: str, expires: int | timedelta = 3600) -> str | None:
        self.path_of(uri)
        return None
