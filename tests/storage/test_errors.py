"""Failures a caller must tell apart: retryable or not."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from stereo_storage import (
    AccessDenied,
    StorageConfig,
    StorageError,
    StorageUnavailable,
    open_store,
)
from tests.servers import MotoServer, SeaweedFS, free_port

from .conftest import BUCKET, file_uri, s3_config

# Fail fast: one attempt, short timeouts.
FAST = {"max_attempts": 1, "connect_timeout": 1.0, "read_timeout": 2.0, "retry_deadline": 1.0}


def test_s3_server_stopped_is_unavailable(tmp_path: Path) -> None:
    server = MotoServer().start()
    config = s3_config(server, **FAST, anonymous=True)
    store = open_store("s3://", config)
    server.client("s3").create_bucket(Bucket=BUCKET)
    assert store.stat(f"s3://{BUCKET}/k") is None  # reachable while it runs
    server.stop()
    assert not server.running

    source = tmp_path / "f"
    source.write_bytes(b"x")
    for call in (
        lambda: store.stat(f"s3://{BUCKET}/k"),
        lambda: store.upload_file(source, f"s3://{BUCKET}/k"),
        lambda: store.download_file(f"s3://{BUCKET}/k", tmp_path / "out"),
        lambda: list(store.list_prefix(f"s3://{BUCKET}/")),
        lambda: store.delete(f"s3://{BUCKET}/k"),
    ):
        with pytest.raises(StorageUnavailable) as info:
            call()
        assert info.value.retryable


def test_gcs_server_down_is_unavailable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", f"http://127.0.0.1:{free_port()}")
    store = open_store("gs://", StorageConfig(**FAST))
    source = tmp_path / "f"
    source.write_bytes(b"x")
    with pytest.raises(StorageUnavailable):
        store.stat("gs://bucket/k")
    with pytest.raises(StorageUnavailable):
        store.upload_file(source, "gs://bucket/k")
    with pytest.raises(StorageUnavailable):
        store.download_file("gs://bucket/k", tmp_path / "out")
    assert not (tmp_path / "out").exists()
    with pytest.raises(StorageUnavailable):
        store.delete("gs://bucket/k")


def test_file_volume_not_mounted_is_unavailable(tmp_path: Path) -> None:
    root = tmp_path / "volume"  # never created: the mount is missing
    store = open_store("file://", StorageConfig(local_root=root))
    with pytest.raises(StorageUnavailable, match="not mounted"):
        store.stat(file_uri(root / "a"))


def test_file_uri_outside_root_is_denied(tmp_path: Path) -> None:
    root = tmp_path / "volume"
    root.mkdir()
    (tmp_path / "escape").write_bytes(b"x")
    store = open_store("file://", StorageConfig(local_root=root))
    with pytest.raises(AccessDenied):
        store.stat(f"{file_uri(root)}/../escape")
    with pytest.raises(AccessDenied):
        store.delete(f"{file_uri(root)}/../escape")
    assert (tmp_path / "escape").exists()


def test_wrong_s3_credentials_are_access_denied(seaweedfs: SeaweedFS, tmp_path: Path) -> None:
    config = s3_config(
        seaweedfs, **FAST, access_key_id_env="NO_SUCH_KEY_VAR", secret_access_key_env="NOR_THIS"
    )
    with pytest.raises(AccessDenied, match="NO_SUCH_KEY_VAR"):
        open_store("s3://", config)

    (tmp_path / "AWS_ACCESS_KEY_ID").write_text("not-a-key")
    (tmp_path / "AWS_SECRET_ACCESS_KEY").write_text("nope")
    store = open_store("s3://", s3_config(seaweedfs, **FAST, secret_dir=tmp_path))
    with pytest.raises(AccessDenied) as info:
        list(store.list_prefix(f"s3://{BUCKET}/"))
    assert not info.value.retryable
    with pytest.raises(AccessDenied):
        store.delete(f"s3://{BUCKET}/k")


def test_unknown_scheme() -> None:
    with pytest.raises(StorageError, match="unsupported"):
        open_store("ftp://host/x")


def test_config_holds_no_secrets() -> None:
    # Credentials are never part of the spec: unknown fields are rejected.
    with pytest.raises(ValidationError):
        StorageConfig.model_validate({"secretAccessKey": "abc"})
    with pytest.raises(ValidationError):
        StorageConfig(access_key_id_env="not a variable name")
    with pytest.raises(ValidationError):
        StorageConfig(gcs_chunk_size=1000)  # not a multiple of 256 KiB
    with pytest.raises(ValidationError):
        StorageConfig(multipart_chunksize=1024)  # S3's minimum part is 5 MiB


def test_file_partial_uploads_stay_invisible(tmp_path: Path) -> None:
    root = tmp_path / "volume"
    (root / "job").mkdir(parents=True)
    # What an interrupted upload leaves behind: a temp file beside the target.
    (root / "job" / ".stereo-partial-abc123").write_bytes(b"half")
    store = open_store("file://", StorageConfig(local_root=root))
    assert list(store.list_prefix(file_uri(root / "job") + "/")) == []
    assert store.stat(file_uri(root / "job" / "seg-1")) is None

    source = tmp_path / "seg"
    source.write_bytes(b"whole")
    store.upload_file(source, file_uri(root / "job" / "seg-1"))
    names = sorted(p.name for p in (root / "job").iterdir())
    assert names == [".stereo-partial-abc123", "seg-1"]  # no temp file of its own left
    assert store.delete_prefix(file_uri(root / "job") + "/") == 1
