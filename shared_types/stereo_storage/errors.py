"""Storage errors, split by what a caller should do about them.

Callers retry ``StorageUnavailable`` (network trouble, throttling, a server
error) with back-off; every other ``StorageError`` is final until something
changes (a missing object, wrong credentials, a bad URI).
"""

from __future__ import annotations

from typing import ClassVar


class StorageError(Exception):
    """Any storage failure; not worth retrying unless a subclass says so."""

    retryable: ClassVar[bool] = False

    def __init__(self, message: str, *, uri: str | None = None) -> None:
        super().__init__(message)
        self.uri = uri


class ObjectNotFound(StorageError):
    """The object (or its bucket) does not exist."""


class AccessDenied(StorageError):
    """Credentials are missing, wrong, or lack permission."""


class StorageUnavailable(StorageError):
    """A transient failure: connection refused or reset, timeout, 5xx, throttling."""

    retryable: ClassVar[bool] = True
