from pathlib import Path

import pytest

import stereo_storage
from stereo_infer.errors import (
    BadInputError,
    InputNotFoundError,
    TransientError,
    UnsupportedUriError,
)
from stereo_infer.io import (
    fetch_input,
    is_local,
    local_path,
    publish_output,
    scheme_of,
    storage_error,
    store_for,
)


def test_local_paths_and_file_uris(tmp_path: Path) -> None:
    video = tmp_path / "a b.mp4"
    video.write_bytes(b"x")
    assert fetch_input(str(video), tmp_path / "dl") == video
    assert fetch_input(video.as_uri(), tmp_path / "dl") == video
    assert local_path("file:///data/a%20b.mp4") == Path("/data/a b.mp4")
    assert not (tmp_path / "dl").exists()


def test_missing_input(tmp_path: Path) -> None:
    with pytest.raises(InputNotFoundError):
        fetch_input((tmp_path / "nope.mp4").as_uri(), tmp_path)


def test_publish_is_atomic_and_creates_parents(tmp_path: Path) -> None:
    local = tmp_path / "local.mp4"
    local.write_bytes(b"done")
    dest = tmp_path / "out" / "deep" / "result.mp4"
    publish_output(local, dest.as_uri())
    assert dest.read_bytes() == b"done"
    assert sorted(p.name for p in dest.parent.iterdir()) == ["result.mp4"]
    assert local.exists()


def test_unsupported_scheme(tmp_path: Path) -> None:
    with pytest.raises(UnsupportedUriError, match="unsupported URI scheme 'ftp'"):
        fetch_input("ftp://host/a.mp4", tmp_path)
    with pytest.raises(BadInputError):
        publish_output(tmp_path, "https://host/a.mp4")
    with pytest.raises(UnsupportedUriError, match="unsupported URI scheme 'ftp'"):
        store_for("ftp://host/a.mp4")
    with pytest.raises(UnsupportedUriError, match="remote host"):
        local_path("file://elsewhere/a.mp4")


@pytest.mark.parametrize(
    ("uri", "scheme", "local"),
    [
        ("/data/a.mp4", "", True),
        ("relative/a.mp4", "", True),
        ("C:/data/a.mp4", "", True),  # a drive letter is not a scheme
        ("file:///data/a.mp4", "file", True),
        ("S3://bucket/a.mp4", "s3", False),
        ("gs://bucket/a.mp4", "gs", False),
    ],
)
def test_schemes(uri: str, scheme: str, local: bool) -> None:
    assert scheme_of(uri) == scheme
    assert is_local(uri) is local


def test_object_store_errors_are_classified() -> None:
    uri = "s3://bucket/a.mp4"
    assert isinstance(
        storage_error(stereo_storage.ObjectNotFound("gone", uri=uri), "x"), InputNotFoundError
    )
    assert isinstance(
        storage_error(stereo_storage.StorageUnavailable("503", uri=uri), "x"), TransientError
    )
    denied = storage_error(stereo_storage.AccessDenied("no", uri=uri), "x")
    assert isinstance(denied, BadInputError) and not isinstance(denied, InputNotFoundError)
    assert isinstance(storage_error(ConnectionResetError(), "x"), TransientError)
