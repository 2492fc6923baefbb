"""The storage interface shared by every backend, and the helpers they reuse."""

from __future__ import annotations

import contextlib
import os
import secrets
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import ClassVar, NamedTuple, Self
from urllib.parse import urlsplit

from .errors import StorageError

StrPath = str | os.PathLike[str]

# Temp files share the target's directory so os.replace is a same-filesystem
# rename; the prefix lets listings skip half-written files.
TEMP_PREFIX = ".stereo-partial-"

# Called with the bytes moved since the previous call (a progress bar's advance).
ProgressCallback = Callable[[int], None]

# The largest piece read_range yields: what a reader holds in memory at once.
CHUNK = 1024 * 1024


@dataclass(frozen=True, slots=True)
class ObjectStat:
    """What a caller needs to know about one stored object."""

    uri: str
    size: int
    # S3: the ETag without quotes; GCS: the ETag; file://: mtime and size.
    etag: str | None = None
    # S3: VersionId on versioned buckets; GCS: the object generation.
    generation: str | None = None
    updated: datetime | None = None


class BucketKey(NamedTuple):
    bucket: str
    key: str


def split_bucket_uri(uri: str, scheme: str) -> BucketKey:
    """Split ``scheme://bucket/key`` without decoding the key: keys are stored verbatim."""
    prefix = f"{scheme}://"
    if not uri.startswith(prefix):
        raise StorageError(f"expected a {prefix} URI, got {uri!r}", uri=uri)
    bucket, _, key = uri[len(prefix) :].partition("/")
    if not bucket:
        raise StorageError(f"no bucket in {uri!r}", uri=uri)
    return BucketKey(bucket, key)


def require_key(uri: str, key: str) -> None:
    if not key or key.endswith("/"):
        raise StorageError(f"{uri!r} names no object", uri=uri)


def require_prefix(uri: str, key: str) -> None:
    # A bare bucket (or "/") is almost always a bad path join; never wipe it.
    if not key.strip("/"):
        raise StorageError(f"refusing to operate on the whole of {uri!r}", uri=uri)


def empty_range(start: int, end: int | None) -> bool:
    """Check read_range's bounds; True when [start, end) holds no bytes at all."""
    if start < 0 or (end is not None and end < 0):
        raise ValueError(f"negative offset in range [{start}, {end})")
    return end is not None and end <= start


def expires_seconds(expires: int | timedelta) -> int:
    seconds = int(expires.total_seconds()) if isinstance(expires, timedelta) else int(expires)
    if seconds <= 0:
        raise ValueError("expires must be positive")
    return seconds


@contextlib.contextmanager
def atomic_target(final_path: StrPath) -> Iterator[Path]:
    """Yield a temp path beside ``final_path``; move it into place only on success.

    Readers never see a partial file, and a failed transfer leaves nothing behind.
    """
    final = Path(final_path)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f"{TEMP_PREFIX}{secrets.token_hex(8)}"
    # Not mkstemp: its 0600 mode would hide the file from other pods' users;
    # 0666 less the umask gives what a plain open() would.
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    try:
        yield tmp
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


class ObjectStore(ABC):
    """One storage backend. Methods take full URIs of the store's scheme."""

    scheme: ClassVar[str]

    @abstractmethod
    def stat(self, uri: str) -> ObjectStat | None:
        """Metadata of one object, or None when it does not exist."""

    @abstractmethod
    def upload_file(
        self, local_path: StrPath, uri: str, progress: ProgressCallback | None = None
    ) -> None:
        """Stream a local file to ``uri``; the object appears only once complete."""

    @abstractmethod
    def download_file(
        self, uri: str, local_path: StrPath, progress: ProgressCallback | None = None
    ) -> None:
        """Stream ``uri`` to a local file; raises ObjectNotFound when it is missing."""

    @abstractmethod
    def read_range(self, uri: str, start: int, end: int | None = None) -> Iterator[bytes]:
        """Bytes [start, end) of the object (to its end when end is None), as chunks of at most
        CHUNK bytes, streamed (never the whole range in memory). ObjectNotFound when missing;
        start beyond the size yields nothing.

        The store is asked on the first ``next()``; closing the iterator early drops the
        transfer without reading the rest.
        """

    @abstractmethod
    def list_prefix(self, uri: str) -> Iterator[ObjectStat]:
        """Every object whose URI starts with ``uri`` (a key prefix, not a folder)."""

    @abstractmethod
    def delete(self, uri: str) -> None:
        """Delete exactly the object ``uri``; an object already gone is not an error."""

    @abstractmethod
    def delete_prefix(self, uri: str) -> int:
        """Delete every object under the prefix; returns how many were deleted."""

    @abstractmethod
    def presigned_url(self, uri: str, expires: int | timedelta = 3600) -> str | None:
        """A plain-HTTP GET URL valid for ``expires``, or None if the backend has none."""

    def close(self) -> None:  # noqa: B027 - optional hook; most clients hold nothing
        """Release network resources."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def scheme_of(uri: str) -> str:
    return urlsplit(uri).scheme.lower()
