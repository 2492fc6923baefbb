"""Getting inputs onto local disk and publishing finished outputs.

Local paths and ``file://`` URIs are handled here, ``http://`` and ``https://`` (inputs
only) by ``stereo_infer.httpsource``. ``s3://`` and ``gs://`` go to ``stereo_storage``
(``open_store(uri, config)`` with ``download_file`` / ``upload_file``), configured by
``STEREO_STORAGE_CONFIG``: a ``StorageConfig`` as JSON, which the Helm chart puts in every
Job's environment (endpoint, region, path-style addressing); unset, the SDKs' defaults apply.

Publishing is atomic: a storage event or a directory listing never shows a
half-written object, so "the object exists" means "the step is done".
"""

import logging
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar
from urllib.parse import unquote, urlsplit

from pydantic import ValidationError

from stereo_infer.errors import (
    BadInputError,
    InputNotFoundError,
    StereoInferError,
    TransientError,
    UnsupportedUriError,
)
from stereo_infer.httpsource import HttpObject, is_http
from stereo_storage import ObjectNotFound, ObjectStore, StorageConfig, open_store

REMOTE_SCHEMES = frozenset({"s3", "gs"})
STORAGE_CONFIG_ENV = "STEREO_STORAGE_CONFIG"

# Tries of a read that fails transiently (a piece of a ranged read: one that moves data
# restarts the count), waiting RETRY_DELAY seconds after the first failure, doubled after each.
READ_ATTEMPTS = 4
RETRY_DELAY = 0.5

_log = logging.getLogger(__name__)
T = TypeVar("T")


def storage_config() -> StorageConfig | None:
    """The store settings from ``STEREO_STORAGE_CONFIG``, or None when it is unset."""
    raw = os.environ.get(STORAGE_CONFIG_ENV, "").strip()
    if not raw:
        return None
    try:
        return StorageConfig.model_validate_json(raw)
    except ValidationError as exc:
        # A deployment mistake: every retry would fail the same way.
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'value'}: {e['msg']}" for e in exc.errors()
        )
        raise BadInputError(
            f"{STORAGE_CONFIG_ENV} is not a valid storage config: {problems}"
        ) from None


def scheme_of(uri: str) -> str:
    """URI scheme, or "" for a plain path (a Windows-style drive letter is not a scheme)."""
    scheme = urlsplit(uri).scheme
    return scheme.lower() if len(scheme) > 1 else ""


def is_local(uri: str) -> bool:
    return scheme_of(uri) in ("", "file")


def local_path(uri: str) -> Path:
    """The filesystem path of a plain path or ``file://`` URI."""
    scheme = scheme_of(uri)
    if scheme == "":
        return Path(uri)
    if scheme == "file":
        parts = urlsplit(uri)
        if parts.netloc not in ("", "localhost"):
            raise UnsupportedUriError(f"file URI with a remote host is not supported: {uri}")
        return Path(unquote(parts.path))
    raise UnsupportedUriError(f"not a local path: {uri}")


def fetch_input(uri: str, dest_dir: Path) -> Path:
    """A local path holding ``uri``'s content: the file itself if local, else a download."""
    if is_local(uri):
        path = local_path(uri)
        if not path.is_file():
            raise InputNotFoundError(f"input not found: {uri}")
        return path
    dest_dir.mkdir(parents=True, exist_ok=True)
    if is_http(uri):
        source = HttpObject.at(uri)
        target = dest_dir / source.name
        retrying(lambda: source.download(target), f"cannot download {source.display}")
        return target
    store = store_for(uri)
    target = dest_dir / (uri.rstrip("/").rsplit("/", 1)[-1] or "input")
    try:
        store.download_file(uri, target)
    except Exception as exc:
        raise storage_error(exc, f"cannot download {uri}") from exc
    return target


def publish_output(local: Path, uri: str) -> None:
    """Make ``local``'s content appear at ``uri`` in one step, complete or not at all."""
    if is_local(uri):
        _publish_local(local, local_path(uri))
        return
    store = store_for(uri)
    try:
        # An object store PUT is atomic: the object appears whole.
        store.upload_file(local, uri)
    except Exception as exc:
        raise storage_error(exc, f"cannot upload to {uri}") from exc


def storage_error(exc: Exception, context: str) -> StereoInferError:
    """Classify a stereo_storage failure: missing object, permanent, or retryable."""
    if isinstance(exc, StereoInferError):
        return exc  # classified already (stereo_infer.httpsource)
    message = f"{context}: {exc}"
    if isinstance(exc, FileNotFoundError | ObjectNotFound):
        return InputNotFoundError(message)
    # stereo_storage marks what is worth retrying; anything unclassified
    # (a network library's own error) is treated as transient too.
    if getattr(exc, "retryable", True):
        return TransientError(message)
    return BadInputError(message)


def retry_delay(failures: int) -> float:
    """Seconds to wait after the ``failures``-th failure in a row."""
    return RETRY_DELAY * 2 ** (failures - 1)


def retrying(call: Callable[[], T], context: str) -> T:
    """``call()``, tried again after a transient failure (READ_ATTEMPTS tries in all)."""
    failures = 0
    while True:
        try:
            return call()
        except Exception as exc:
            error = storage_error(exc, context)
            failures += 1
            if not isinstance(error, TransientError) or failures >= READ_ATTEMPTS:
                if error is exc:
                    raise
                raise error from exc
            delay = retry_delay(failures)
            _log.warning("%s; trying again in %.1f s", error, delay)
            time.sleep(delay)


def _publish_local(local: Path, dest: Path) -> None:
    if local.resolve() == dest.resolve():
        return
    dest.parent.mkdir(parents=True, exist_ok=True)
    # Same directory as the destination, so the final rename stays on one
    # filesystem and is atomic; the dot hides it from watchers of *.mp4.
    partial = dest.with_name(f".{dest.name}.partial-{os.getpid()}")
    try:
        shutil.copyfile(local, partial)
        with partial.open("rb") as handle:
            os.fsync(handle.fileno())
        os.replace(partial, dest)
    finally:
        partial.unlink(missing_ok=True)


def store_for(uri: str) -> ObjectStore:
    scheme = scheme_of(uri)
    if scheme not in REMOTE_SCHEMES:
        raise UnsupportedUriError(
            f"unsupported URI scheme {scheme!r} in {uri}; use a local path, file://, s3:// or gs://"
        )
    config = storage_config()
    try:
        return open_store(uri, config)
    except Exception as exc:
        raise storage_error(exc, f"cannot open storage for {uri}") from exc
