"""s3:// on AWS or any S3-compatible server (MinIO, SeaweedFS, moto)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any, NoReturn

import boto3
import boto3.exceptions
import botocore.exceptions as bce
import s3transfer.exceptions
from boto3.s3.transfer import TransferConfig
from botocore import UNSIGNED
from botocore.config import Config

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

_NOT_FOUND = {"404", "NoSuchKey", "NoSuchBucket", "NotFound", "NoSuchVersion"}
_DENIED = {
    "403",
    "AccessDenied",
    "AllAccessDisabled",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "InvalidToken",
    "AccountProblem",
}
_TRANSIENT = {
    "SlowDown",
    "Throttling",
    "ThrottlingException",
    "RequestTimeout",
    "RequestTimeTooSkewed",
    "InternalError",
    "ServiceUnavailable",
    "503",
    "500",
}
# A range starting at or past the end (any range of an empty object).
_UNSATISFIABLE = {"InvalidRange", "416"}
_DELETE_BATCH = 1000  # DeleteObjects' limit
_CREDENTIAL_ERRORS = (
    bce.NoCredentialsError,
    bce.PartialCredentialsError,
    bce.CredentialRetrievalError,
)
# What the SDK raises; anything else (a missing local file...) is the caller's.
_SDK_ERRORS = (
    bce.BotoCoreError,
    bce.ClientError,
    boto3.exceptions.Boto3Error,
    s3transfer.exceptions.RetriesExceededError,
)


def _translate(exc: BaseException, uri: str) -> NoReturn:
    """Raise the StorageError matching ``exc`` or anything it wraps."""
    # boto3 wraps a failed upload's ClientError in S3UploadFailedError (as
    # __context__) and a failed download's stream error in RetriesExceededError.
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, bce.ClientError):
            err = seen.response.get("Error", {})
            code = str(err.get("Code", ""))
            status = int(seen.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
            msg = f"{uri}: {code or status} {err.get('Message', '')}".rstrip()
            if code in _NOT_FOUND or status == 404:
                raise ObjectNotFound(msg, uri=uri) from exc
            if code in _DENIED or status in (401, 403):
                raise AccessDenied(msg, uri=uri) from exc
            if code in _TRANSIENT or status >= 500 or status == 429:
                raise StorageUnavailable(msg, uri=uri) from exc
            raise StorageError(msg, uri=uri) from exc
        # IncompleteReadError: a body cut short, i.e. the connection broke.
        if isinstance(seen, bce.ConnectionError | bce.HTTPClientError | bce.IncompleteReadError):
            raise StorageUnavailable(f"{uri}: {seen}", uri=uri) from exc
        if isinstance(
            seen,
            bce.NoCredentialsError | bce.PartialCredentialsError | bce.CredentialRetrievalError,
        ):
            raise AccessDenied(f"{uri}: {seen}", uri=uri) from exc
        seen = getattr(seen, "last_exception", None) or seen.__cause__ or seen.__context__
    raise StorageError(f"{uri}: {exc}", uri=uri) from exc


class S3Store(ObjectStore):
    scheme = "s3"

    def __init__(self, config: StorageConfig | None = None, *, client: Any = None) -> None:
        self.config = config = config or StorageConfig()
        self._transfer = TransferConfig(
            multipart_threshold=config.multipart_threshold,
            multipart_chunksize=config.multipart_chunksize,
            max_concurrency=config.max_concurrency,
        )
        self._client = client if client is not None else self._make_client(config)

    @staticmethod
    def _make_client(config: StorageConfig) -> Any:
        options: dict[str, Any] = {
            "signature_version": UNSIGNED if config.anonymous else "s3v4",
            "s3": {"addressing_style": "path" if config.path_style else "auto"},
            "retries": {"max_attempts": config.max_attempts, "mode": "standard"},
            "connect_timeout": config.connect_timeout,
            "read_timeout": config.read_timeout,
        }
        if config.endpoint_url:
            # Many S3-compatible servers reject the CRC checksums that newer
            # botocore adds by default; send them only where an API needs one.
            options["request_checksum_calculation"] = "when_required"
            options["response_checksum_validation"] = "when_required"
        creds = config.s3_credentials()
        return boto3.session.Session().client(
            "s3",
            endpoint_url=config.endpoint_url,
            region_name=config.region,
            aws_access_key_id=creds.access_key_id if creds else None,
            aws_secret_access_key=creds.secret_access_key if creds else None,
            aws_session_token=creds.session_token if creds else None,
            config=Config(**options),
        )

    def _stat_of(self, bucket: str, item: dict[str, Any]) -> ObjectStat:
        return ObjectStat(
            uri=f"s3://{bucket}/{item['Key']}",
            size=int(item["Size"]),
            etag=str(item.get("ETag", "")).strip('"') or None,
            updated=item.get("LastModified"),
        )

    def stat(self, uri: str) -> ObjectStat | None:
        bucket, key = split_bucket_uri(uri, "s3")
        require_key(uri, key)
        try:
            head = self._client.head_object(Bucket=bucket, Key=key)
        except _SDK_ERRORS as exc:
            try:
                _translate(exc, uri)
            except ObjectNotFound:
                return None
        return ObjectStat(
            uri=uri,
            size=int(head["ContentLength"]),
            etag=str(head.get("ETag", "")).strip('"') or None,
            generation=head.get("VersionId"),
            updated=head.get("LastModified"),
        )

    def upload_file(
        self, local_path: StrPath, uri: str, progress: ProgressCallback | None = None
    ) -> None:
        bucket, key = split_bucket_uri(uri, "s3")
        require_key(uri, key)
        try:
            # Multipart above the threshold; S3 shows the object only after
            # CompleteMultipartUpload, so readers never see a partial one.
            self._client.upload_file(
                str(local_path), bucket, key, Config=self._transfer, Callback=progress
            )
        except _SDK_ERRORS as exc:
            _translate(exc, uri)

    def download_file(
        self, uri: str, local_path: StrPath, progress: ProgressCallback | None = None
    ) -> None:
        bucket, key = split_bucket_uri(uri, "s3")
        require_key(uri, key)
        try:
            with atomic_target(local_path) as tmp:
                self._client.download_file(
                    bucket, key, str(tmp), Config=self._transfer, Callback=progress
                )
        except _SDK_ERRORS as exc:
            _translate(exc, uri)

    def read_range(self, uri: str, start: int, end: int | None = None) -> Iterator[bytes]:
        bucket, key = split_bucket_uri(uri, "s3")
        require_key(uri, key)
        if empty_range(start, end):
            # "bytes=5-4" is invalid, and S3 answers an invalid Range with the whole object.
            if self.stat(uri) is None:
                raise ObjectNotFound(f"{uri}: no such object", uri=uri)
            return
        last = "" if end is None else str(end - 1)
        try:
            response = self._client.get_object(
                Bucket=bucket, Key=key, Range=f"bytes={start}-{last}"
            )
        except bce.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in _UNSATISFIABLE:
                return
            _translate(exc, uri)
        except _SDK_ERRORS as exc:
            _translate(exc, uri)
        body = response["Body"]
        try:
            # One GET streamed off the socket; closing the body early drops the
            # connection instead of draining the rest of the range.
            yield from body.iter_chunks(CHUNK)
        except _SDK_ERRORS as exc:
            _translate(exc, uri)
        finally:
            body.close()

    def list_prefix(self, uri: str) -> Iterator[ObjectStat]:
        bucket, prefix = split_bucket_uri(uri, "s3")
        pages = self._client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        try:
            for page in pages:
                for item in page.get("Contents", []):
                    yield self._stat_of(bucket, item)
        except _SDK_ERRORS as exc:
            _translate(exc, uri)

    def delete(self, uri: str) -> None:
        bucket, key = split_bucket_uri(uri, "s3")
        require_key(uri, key)
        try:
            # S3 answers 204 whether or not the key existed: deleting twice is fine.
            self._client.delete_object(Bucket=bucket, Key=key)
        except _SDK_ERRORS as exc:
            try:
                _translate(exc, uri)
            except ObjectNotFound:
                return  # e.g. NoSuchKey from S3-compatible servers that do say so

    def delete_prefix(self, uri: str) -> int:
        bucket, prefix = split_bucket_uri(uri, "s3")
        require_prefix(uri, prefix)
        deleted = 0
        batch: list[dict[str, str]] = []
        for stat in self.list_prefix(uri):
            batch.append({"Key": stat.uri[len(f"s3://{bucket}/") :]})
            if len(batch) == _DELETE_BATCH:
                deleted += self._delete_batch(bucket, batch, uri)
                batch = []
        if batch:
            deleted += self._delete_batch(bucket, batch, uri)
        return deleted

    def _delete_batch(self, bucket: str, batch: list[dict[str, str]], uri: str) -> int:
        try:
            result = self._client.delete_objects(
                Bucket=bucket, Delete={"Objects": batch, "Quiet": True}
            )
        except _SDK_ERRORS as exc:
            _translate(exc, uri)
        # DeleteObjects answers 200 even when single keys fail.
        errors = [e for e in result.get("Errors", []) if e.get("Code") != "NoSuchKey"]
        if errors:
            first = errors[0]
            raise StorageError(
                f"{uri}: {len(errors)} deletes failed, first {first.get('Key')}: "
                f"{first.get('Code')} {first.get('Message', '')}",
                uri=uri,
            )
        return len(batch)

    def presigned_url(self, uri: str, expires: int | timedelta = 3600) -> str | None:
        bucket, key = split_bucket_uri(uri, "s3")
        require_key(uri, key)
        try:
            url: str = self._client.generate_presigned_url(
                "get_object",
                Params={"Bucket": bucket, "Key": key},
                ExpiresIn=expires_seconds(expires),
            )
        except _SDK_ERRORS as exc:
            _translate(exc, uri)
        return url

    def close(self) -> None:
        self._client.close()
