"""Pick a store by URI scheme."""

from __future__ import annotations

from .base import ObjectStore, scheme_of
from .config import StorageConfig
from .errors import StorageError


def open_store(uri: str, config: StorageConfig | None = None) -> ObjectStore:
    """A store able to serve ``uri`` (and any other URI of the same scheme).

    SDKs are imported here, on first use, so an image that only needs one
    backend does not need the others installed.
    """
    scheme = scheme_of(uri)
    if scheme == "s3":
        from .s3 import S3Store

        return S3Store(config)
    if scheme == "gs":
        from .gcs import GCSStore

        return GCSStore(config)
    if scheme == "file":
        from .local import LocalStore

        return LocalStore(config)
    raise StorageError(f"unsupported storage scheme {scheme!r} in {uri!r}", uri=uri)
