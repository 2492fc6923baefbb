"""gs:// on Google Cloud Storage, or an emulator named by STORAGE_EMULATOR_HOST."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import timedelta
from typing import Any, NoReturn

import google.api_core.exceptions as gexc
import google.auth
import google.auth.exceptions
import google.auth.transport.requests
import requests
from google.auth.credentials import AnonymousCredentials, Credentials
from google.cloud import storage
from google.cloud.storage import exceptions as storage_exc
from google.cloud.storage.retry import DEFAULT_RETRY
from google.oauth2 import service_account

from .base import (
    CHUNK,
    ObjectStat,
    ObjectStore,
    ProgressCallback,
    StrPath,
    atomic_target,
    empty_range,
    expires_seconds,
    require_key,
    require_prefix,
    split_bucket_uri,
)
from .config import StorageConfig
from .errors import AccessDenied, ObjectNotFound, StorageError, StorageUnavailable

_SCOPES = ("https://www.googleapis.com/auth/devstorage.read_write",)
_SDK_ERRORS = (
    gexc.GoogleAPIError,
    google.auth.exceptions.GoogleAuthError,
    requests.exceptions.RequestException,
    storage_exc.InvalidResponse,
    storage_exc.DataCorruption,
)

# read_range fetches windows growing from CHUNK up to this, one request each.
_MAX_WINDOW = 8 * CHUNK

_TRANSIENT_TYPES = (
    requests.exceptions.ConnectionError,
    requests.exceptions.Timeout,
    google.auth.exceptions.TransportError,
    storage_exc.DataCorruption,  # a damaged transfer is worth another try
)


def _status_of(exc: BaseException) -> int:
    code = getattr(exc, "code", None)
    if isinstance(code, int):
        return code
    response = getattr(exc, "response", None)
    return int(getattr(response, "status_code", 0) or 0)


def _translate(exc: BaseException, uri: str) -> NoReturn:
    seen: BaseException | None = exc
    while seen is not None:
        msg = f"{uri}: {seen}"
        if isinstance(seen, gexc.RetryError) and seen.cause is not None:
            # The retry deadline passed; judge by what kept failing.
            seen = seen.cause
            continue
        if isinstance(seen, _TRANSIENT_TYPES):
            raise StorageUnavailable(msg, uri=uri) from exc
        if isinstance(seen, google.auth.exceptions.GoogleAuthError):
            # Missing or unusable credentials (DefaultCredentialsError, RefreshError).
            raise AccessDenied(msg, uri=uri) from exc
        status = _status_of(seen)
        if status:
            if status == 404:
                raise ObjectNotFound(msg, uri=uri) from exc
            if status in (401, 403):
                raise AccessDenied(msg, uri=uri) from exc
            if status in (408, 429) or status >= 500:
                raise StorageUnavailable(msg, uri=uri) from exc
            raise StorageError(msg, uri=uri) from exc
        seen = seen.__cause__ or seen.__context__
    raise StorageError(f"{uri}: {exc}", uri=uri) from exc


def _email_of(creds: Credentials) -> str | None:
    email = getattr(creds, "service_account_email", None)
    return email if isinstance(email, str) and email and email != "default" else None


class GCSStore(ObjectStore):
    scheme = "gs"

    def __init__(
        self, config: StorageConfig | None = None, *, client: storage.Client | None = None
    ) -> None:
        self.config = config = config or StorageConfig()
        self._timeout = (config.connect_timeout, config.read_timeout)
        # Uploads of a given segment are idempotent (same bytes, same name), so
        # retrying them is safe even without a generation precondition.
        self._retry = DEFAULT_RETRY.with_timeout(config.retry_deadline)
        self._signer: Credentials | None = None
        try:
            self._client = client if client is not None else self._make_client(config)
        except _SDK_ERRORS as exc:
            _translate(exc, "gs://")

    def _make_client(self, config: StorageConfig) -> storage.Client:
        key_file = config.gcs_key_file()
        key_creds = (
            service_account.Credentials.from_service_account_file(str(key_file), scopes=_SCOPES)
            if key_file
            else None
        )
        project = config.gcs_project
        # An emulator cannot mint OAuth tokens, so talk to it unauthenticated;
        # a mounted key is then used only to sign URLs.
        anonymous = config.anonymous or bool(os.environ.get("STORAGE_EMULATOR_HOST"))
        creds: Credentials
        if anonymous:
            creds = AnonymousCredentials()
        elif key_creds is not None:
            creds = key_creds
        else:
            # Workload identity, GOOGLE_APPLICATION_CREDENTIALS, or gcloud's login.
            creds, default_project = google.auth.default(scopes=_SCOPES)
            project = project or default_project
        self._signer = key_creds or (None if anonymous else creds)
        options = {"api_endpoint": config.endpoint_url} if config.endpoint_url else None
        return storage.Client(
            project=project,
            credentials=creds,
            client_options=options,
            use_auth_w_custom_endpoint=not anonymous,
        )

    def _blob_stat(self, blob: Any) -> ObjectStat:
        return ObjectStat(
            uri=f"gs://{blob.bucket.name}/{blob.name}",
            size=int(blob.size or 0),
            etag=blob.etag,
            generation=str(blob.generation) if blob.generation is not None else None,
            updated=blob.updated,
        )

    def stat(self, uri: str) -> ObjectStat | None:
        bucket, key = split_bucket_uri(uri, "gs")
        require_key(uri, key)
        try:
            blob = self._client.bucket(bucket).get_blob(
                key, timeout=self._timeout, retry=self._retry
            )
        except _SDK_ERRORS as exc:
            try:
                _translate(exc, uri)
            except ObjectNotFound:
                return None
        return None if blob is None else self._blob_stat(blob)

    def upload_file(
        self, local_path: StrPath, uri: str, progress: ProgressCallback | None = None
    ) -> None:
        bucket, key = split_bucket_uri(uri, "gs")
        require_key(uri, key)
        with open(local_path, "rb") as source:
            size = os.fstat(source.fileno()).st_size
            blob = self._client.bucket(bucket).blob(key)
            try:
                if size > self.config.multipart_threshold:
                    # Resumable, sent in chunks: never more than a chunk in
                    # memory, and a blip resends one chunk, not the file. The
                    # library picks resumable itself only above 8 MiB and only
                    # when the size is not given, hence size=None.
                    blob.chunk_size = self.config.gcs_chunk_size
                    blob.upload_from_file(
                        source, size=None, timeout=self._timeout, retry=self._retry
                    )
                else:
                    blob.upload_from_file(
                        source, size=size, timeout=self._timeout, retry=self._retry
                    )
            except _SDK_ERRORS as exc:
                _translate(exc, uri)
        # The client has no per-chunk hook: progress is reported once, when done.
        if progress is not None:
            progress(size)

    def download_file(
        self, uri: str, local_path: StrPath, progress: ProgressCallback | None = None
    ) -> None:
        bucket, key = split_bucket_uri(uri, "gs")
        require_key(uri, key)
        # Without a chunk size the body is streamed to disk; checksums are verified.
        blob = self._client.bucket(bucket).blob(key)
        try:
            with atomic_target(local_path) as tmp:
                blob.download_to_filename(str(tmp), timeout=self._timeout, retry=self._retry)
        except _SDK_ERRORS as exc:
            _translate(exc, uri)
        if progress is not None:
            progress(os.path.getsize(local_path))

    def read_range(self, uri: str, start: int, end: int | None = None) -> Iterator[bytes]:
        bucket, key = split_bucket_uri(uri, "gs")
        require_key(uri, key)
        if empty_range(start, end):
            if self.stat(uri) is None:
                raise ObjectNotFound(f"{uri}: no such object", uri=uri)
            return
        # Successive ranged downloads rather than one streamed response: the
        # client has no public streaming read (blob.open() does the same, with
        # 40 MiB pieces and an extra metadata request to seek), and each window
        # is retried on its own and works against fake-gcs-server. Windows start
        # small, since a reader that seeks (ffmpeg) drops the rest, and grow so
        # long reads do not pay a round trip per MiB.
        blob = self._client.bucket(bucket).blob(key)
        pos, window = start, CHUNK
        while end is None or pos < end:
            last = pos + window - 1 if end is None else min(pos + window, end) - 1
            try:
                data = blob.download_as_bytes(
                    start=pos,
                    end=last,
                    # Stored bytes, not gunzipped ones: offsets are the stored object's.
                    raw_download=True,
                    checksum=None,  # the server has only the whole object's hashes
                    # The first window tells the blob its generation; later ones
                    # read that generation only, so an object replaced meanwhile
                    # fails (404 or 412) instead of splicing two versions.
                    if_generation_match=blob.generation,
                    timeout=self._timeout,
                    retry=self._retry,
                )
            except gexc.RequestRangeNotSatisfiable:
                return  # start at or past the end
            except _SDK_ERRORS as exc:
                _translate(exc, uri)
            for offset in range(0, len(data), CHUNK):
                yield data[offset : offset + CHUNK]
            if len(data) < last + 1 - pos:
                return  # the object ended inside the window
            pos, window = last + 1, min(window * 2, _MAX_WINDOW)

    def list_prefix(self, uri: str) -> Iterator[ObjectStat]:
        bucket, prefix = split_bucket_uri(uri, "gs")
        try:
            for blob in self._client.list_blobs(
                bucket, prefix=prefix or None, timeout=self._timeout, retry=self._retry
            ):
                yield self._blob_stat(blob)
        except _SDK_ERRORS as exc:
            _translate(exc, uri)

    def delete(self, uri: str) -> None:
        bucket, key = split_bucket_uri(uri, "gs")
        require_key(uri, key)
        try:
            self._client.bucket(bucket).blob(key).delete(timeout=self._timeout, retry=self._retry)
        except gexc.NotFound:
            return  # gone already (or a retry after the first try deleted it)
        except _SDK_ERRORS as exc:
            _translate(exc, uri)

    def delete_prefix(self, uri: str) -> int:
        _, prefix = split_bucket_uri(uri, "gs")
        require_prefix(uri, prefix)
        deleted = 0
        for stat in list(self.list_prefix(uri)):
            bucket, key = split_bucket_uri(stat.uri, "gs")
            try:
                self._client.bucket(bucket).blob(key).delete(
                    timeout=self._timeout, retry=self._retry
                )
                deleted += 1
            except gexc.NotFound:
                pass  # gone already: the goal is met
            except _SDK_ERRORS as exc:
                _translate(exc, stat.uri)
        return deleted

    def presigned_url(self, uri: str, expires: int | timedelta = 3600) -> str | None:
        bucket, key = split_bucket_uri(uri, "gs")
        require_key(uri, key)
        if self._signer is None:
            return None  # anonymous access without a key: nothing to sign with
        blob = self._client.bucket(bucket).blob(key)
        kwargs: dict[str, Any] = {}
        if isinstance(self._signer, service_account.Credentials):
            kwargs["credentials"] = self._signer  # holds a private key: signs locally
        else:
            # Token-only credentials (GKE workload identity) sign through IAM
            # signBlob as their service account. A refresh also turns the
            # metadata server's "default" account into a real email.
            signer = self._signer
            try:
                if not signer.valid or _email_of(signer) is None:
                    signer.refresh(google.auth.transport.requests.Request())
            except _SDK_ERRORS as exc:
                _translate(exc, uri)
            email = _email_of(signer)
            if email is None:
                return None  # e.g. a user's gcloud login: nothing can sign
            kwargs["service_account_email"] = email
            kwargs["access_token"] = signer.token
        endpoint = self.config.endpoint_url or os.environ.get("STORAGE_EMULATOR_HOST")
        if endpoint:
            kwargs["api_access_endpoint"] = endpoint if "://" in endpoint else f"http://{endpoint}"
        try:
            url: str = blob.generate_signed_url(
                expiration=timedelta(seconds=expires_seconds(expires)),
                method="GET",
                version="v4",
                **kwargs,
            )
        except _SDK_ERRORS as exc:
            _translate(exc, uri)
        return url

    def close(self) -> None:
        self._client.close()
