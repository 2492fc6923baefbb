"""The same contract, checked against every backend on a real server."""

from __future__ import annotations

import hashlib
import os
import urllib.request
from datetime import datetime
from pathlib import Path

import pytest

from stereo_storage import ObjectNotFound, StorageError
from stereo_storage.base import CHUNK

from .conftest import Backend, MiB, file_uri


def write_random(path: Path, size: int) -> Path:
    path.write_bytes(os.urandom(size))
    return path


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(MiB), b""):
            digest.update(block)
    return digest.hexdigest()


def test_upload_stat_download(backend: Backend, tmp_path: Path) -> None:
    source = write_random(tmp_path / "in.bin", 100_000)
    uri = backend.uri("seg 0001.mp4")  # a space survives every backend
    backend.store.upload_file(source, uri)

    stat = backend.store.stat(uri)
    assert stat is not None
    assert (stat.uri, stat.size) == (uri, 100_000)
    assert stat.etag
    assert isinstance(stat.updated, datetime) and stat.updated.tzinfo is not None

    target = tmp_path / "out" / "copy.bin"
    backend.store.download_file(uri, target)
    assert target.read_bytes() == source.read_bytes()
    assert [p.name for p in target.parent.iterdir()] == ["copy.bin"]  # no temp left


def test_large_upload_goes_multipart(backend: Backend, tmp_path: Path) -> None:
    size = 12 * MiB + 12345  # over the 5 MiB threshold: three parts or 13 chunks
    source = write_random(tmp_path / "big.bin", size)
    uri = backend.uri("big.bin")
    backend.store.upload_file(source, uri)

    stat = backend.store.stat(uri)
    assert stat is not None and stat.size == size
    if backend.name in ("moto", "seaweedfs"):
        assert stat.etag and stat.etag.endswith("-3"), stat.etag  # a 3-part multipart ETag
    if backend.name == "gcs":
        assert backend.server is not None
        assert "uploadType=resumable" in backend.server.log_path.read_text()

    target = tmp_path / "big.out"
    backend.store.download_file(uri, target)
    assert sha256(target) == sha256(source)


def test_list_prefix(backend: Backend, tmp_path: Path) -> None:
    source = write_random(tmp_path / "f", 10)
    for key in ("job/seg 2%", "job/seg-1", "job/sub/seg-3", "jobx/other", "elsewhere"):
        backend.store.upload_file(source, backend.uri(key))

    # Keys come back verbatim (no percent-encoding) and in byte order.
    listed = list(backend.store.list_prefix(backend.uri("job/")))
    assert [s.uri for s in listed] == [
        backend.uri("job/seg 2%"),
        backend.uri("job/seg-1"),
        backend.uri("job/sub/seg-3"),
    ]
    assert all(s.size == 10 and s.etag for s in listed)
    # A prefix is a string prefix, not a folder, as on S3 and GCS.
    assert len(list(backend.store.list_prefix(backend.uri("job")))) == 4
    assert list(backend.store.list_prefix(backend.uri("nothing-here/"))) == []


def test_delete_prefix(backend: Backend, tmp_path: Path) -> None:
    source = write_random(tmp_path / "f", 10)
    for key in ("job/a", "job/b", "job/deep/c", "keep/d"):
        backend.store.upload_file(source, backend.uri(key))

    assert backend.store.delete_prefix(backend.uri("job/")) == 3
    assert list(backend.store.list_prefix(backend.uri("job/"))) == []
    assert backend.store.stat(backend.uri("keep/d")) is not None
    assert backend.store.delete_prefix(backend.uri("job/")) == 0


def test_delete_takes_exactly_one_object_and_is_idempotent(
    backend: Backend, tmp_path: Path
) -> None:
    source = write_random(tmp_path / "f", 10)
    for key in ("out/movie.mp4", "out/movie.mp4.bak"):
        backend.store.upload_file(source, backend.uri(key))

    backend.store.delete(backend.uri("out/movie.mp4"))
    assert backend.store.stat(backend.uri("out/movie.mp4")) is None
    # An object that shares its name as a prefix stays (delete_prefix would take it along).
    left = [s.uri for s in backend.store.list_prefix(backend.uri("out/"))]
    assert left == [backend.uri("out/movie.mp4.bak")]
    # Deleting it again, or an object that never was, is fine.
    backend.store.delete(backend.uri("out/movie.mp4"))
    backend.store.delete(backend.uri("never/was.mp4"))


def test_delete_refuses_a_uri_that_names_no_object(backend: Backend) -> None:
    with pytest.raises(StorageError, match=r"names (no object|a folder)"):
        backend.store.delete(backend.uri("out/"))


def test_delete_prefix_refuses_a_whole_bucket(backend: Backend) -> None:
    whole = backend.root.split("://")[0] + "://stereo-test/"
    if backend.name == "file":
        assert backend.config.local_root is not None
        whole = file_uri(backend.config.local_root) + "/"
    with pytest.raises(StorageError, match="refusing"):
        backend.store.delete_prefix(whole)


def test_presigned_url(backend: Backend, tmp_path: Path) -> None:
    source = write_random(tmp_path / "f", 4096)
    uri = backend.uri("shared/clip.mp4")
    backend.store.upload_file(source, uri)

    url = backend.store.presigned_url(uri, 300)
    if backend.name == "file":
        assert url is None
        return
    assert url is not None
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.read() == source.read_bytes()


def test_missing_object(backend: Backend, tmp_path: Path) -> None:
    uri = backend.uri("no/such/object")
    assert backend.store.stat(uri) is None
    target = tmp_path / "never.bin"
    with pytest.raises(ObjectNotFound) as info:
        backend.store.download_file(uri, target)
    assert not info.value.retryable
    assert list(tmp_path.iterdir()) == []  # neither the target nor a temp file


def test_overwrite_replaces_content(backend: Backend, tmp_path: Path) -> None:
    uri = backend.uri("out.mp4")
    first = write_random(tmp_path / "1", 1000)
    second = write_random(tmp_path / "2", 2000)
    backend.store.upload_file(first, uri)
    before = backend.store.stat(uri)
    backend.store.upload_file(second, uri)
    after = backend.store.stat(uri)
    assert before is not None and after is not None
    assert after.size == 2000 and after.etag != before.etag
    backend.store.download_file(uri, tmp_path / "got")
    assert (tmp_path / "got").read_bytes() == second.read_bytes()


def read_all(backend: Backend, uri: str, start: int, end: int | None = None) -> bytes:
    chunks = list(backend.store.read_range(uri, start, end))
    assert all(0 < len(chunk) <= CHUNK for chunk in chunks), [len(c) for c in chunks]
    return b"".join(chunks)


def test_read_range(backend: Backend, tmp_path: Path) -> None:
    size = 3 * MiB + 12345  # several chunks (and GCS windows), the last one partial
    data = write_random(tmp_path / "in.bin", size).read_bytes()
    uri = backend.uri("media/clip 1.mp4")
    backend.store.upload_file(tmp_path / "in.bin", uri)

    assert read_all(backend, uri, 0) == data
    assert read_all(backend, uri, 0, size) == data
    assert read_all(backend, uri, 1000, 2 * MiB + 7) == data[1000 : 2 * MiB + 7]
    assert read_all(backend, uri, MiB, MiB + 1) == data[MiB : MiB + 1]
    assert read_all(backend, uri, size - 10) == data[-10:]
    # An end past the object stops at the object's end; a start past it reads nothing.
    assert read_all(backend, uri, size - 10, size + 100) == data[-10:]
    assert read_all(backend, uri, size) == b""
    assert read_all(backend, uri, size + 5) == b""
    assert read_all(backend, uri, size + 5, size + 10) == b""
    assert read_all(backend, uri, 7, 7) == b""


def test_read_range_streams_and_can_stop_early(backend: Backend, tmp_path: Path) -> None:
    data = write_random(tmp_path / "in.bin", 3 * MiB).read_bytes()
    uri = backend.uri("big.bin")
    backend.store.upload_file(tmp_path / "in.bin", uri)
    chunks = backend.store.read_range(uri, 10)
    assert next(chunks) == data[10 : 10 + CHUNK]
    chunks.close()  # type: ignore[attr-defined]  # a generator: drops the transfer


def test_read_range_of_an_empty_object(backend: Backend, tmp_path: Path) -> None:
    uri = backend.uri("empty")
    backend.store.upload_file(write_random(tmp_path / "empty", 0), uri)
    assert read_all(backend, uri, 0) == b""
    assert read_all(backend, uri, 0, 10) == b""


@pytest.mark.parametrize(("start", "end"), [(0, None), (100, 200), (5, 5)])
def test_read_range_of_a_missing_object(backend: Backend, start: int, end: int | None) -> None:
    with pytest.raises(ObjectNotFound) as info:
        list(backend.store.read_range(backend.uri("no/such/object"), start, end))
    assert not info.value.retryable
