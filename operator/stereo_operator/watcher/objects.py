"""Reading one object generation's facts from Cloud Storage, for notifications that carry
none (payload format NONE: attributes only, no size).

Only the Applier calls it, and only for an event that names a Segment's output and is newer
than the recorded completion, so a bucket's other objects never cost a request. The object
is read at the notified generation: a generation that is gone (overwritten or deleted
since) gives None, and the newer generation's own notification completes the Segment.

Credentials: Application Default Credentials (workload identity, a mounted key through
GOOGLE_APPLICATION_CREDENTIALS); STORAGE_EMULATOR_HOST for an emulator. The watcher needs
``storage.objects.get`` on the bucket for this (roles/storage.objectViewer).
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class ObjectFacts:
    size: int
    etag: str | None = None
    created: datetime | None = None
    """When this generation was written (timeCreated)."""


class StatUnavailable(Exception):
    """Storage could not be asked now (network, 5xx, throttling): retry later."""


class StatDenied(Exception):
    """Storage will not answer this watcher (no credentials, no permission): retrying
    cannot help."""


class ObjectStat(Protocol):
    async def stat(self, bucket: str, key: str, generation: int) -> ObjectFacts | None:
        """The facts of that generation, None if it does not exist (any more)."""
        ...

    def close(self) -> None: ...


class GcsObjectStat:
    """ObjectStat over google-cloud-storage (one client, made on first use)."""

    def __init__(self, timeout: float = 10.0) -> None:
        self._timeout = timeout
        self._client: Any = None
        self._lock = threading.Lock()

    def _get_client(self) -> Any:
        with self._lock:
            if self._client is None:
                from google.cloud import storage

                # project=None: reading an object needs none (and ADC may not name one).
                self._client = storage.Client(project=None)
            return self._client

    def _stat(self, bucket: str, key: str, generation: int) -> ObjectFacts | None:
        import requests
        from google.api_core import exceptions as api
        from google.auth import exceptions as auth

        try:
            blob = (
                self._get_client()
                .bucket(bucket)
                .get_blob(key, generation=generation, timeout=self._timeout, retry=None)
            )
        except (api.Unauthorized, api.Forbidden) as exc:
            raise StatDenied(f"gs://{bucket}/{key}: {exc.message}") from None
        except auth.DefaultCredentialsError as exc:
            raise StatDenied(f"no Google credentials: {exc}") from None
        except api.NotFound:
            return None  # the bucket is gone
        except (
            api.GoogleAPIError,
            auth.TransportError,
            requests.exceptions.RequestException,
            OSError,
        ) as exc:
            raise StatUnavailable(f"gs://{bucket}/{key}: {type(exc).__name__}: {exc}") from None
        if blob is None:
            return None
        etag = blob.etag if isinstance(blob.etag, str) and blob.etag else None
        return ObjectFacts(size=int(blob.size or 0), etag=etag, created=blob.time_created)

    async def stat(self, bucket: str, key: str, generation: int) -> ObjectFacts | None:
        return await asyncio.to_thread(self._stat, bucket, key, generation)

    def close(self) -> None:
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            close = getattr(client, "close", None)
            if callable(close):
                close()
