"""Connection settings for a store.

A StorageConfig names where credentials live (environment variables, a
mounted Secret directory, or the platform's workload identity when neither is
given); it never holds a secret itself, so it is safe to build from a custom
resource or a ConfigMap.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, NamedTuple

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from .errors import AccessDenied

MiB = 1024 * 1024

# File names looked for in a mounted Secret directory. They match the usual
# environment variable names so one Secret can serve envFrom and a volume.
SECRET_ACCESS_KEY_ID = "AWS_ACCESS_KEY_ID"
SECRET_SECRET_ACCESS_KEY = "AWS_SECRET_ACCESS_KEY"
SECRET_SESSION_TOKEN = "AWS_SESSION_TOKEN"
SECRET_GCS_KEY = "key.json"  # a service-account key, as GCP docs name it


_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _env_name(value: str | None) -> str | None:
    if value is not None and not _ENV_NAME.fullmatch(value):
        raise ValueError(f"{value!r} is not an environment variable name")
    return value


EnvName = Annotated[str | None, AfterValidator(_env_name)]


class S3Credentials(NamedTuple):
    access_key_id: str
    secret_access_key: str
    session_token: str | None


class StorageConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    # S3-compatible endpoint (MinIO, SeaweedFS, another region's gateway) or a
    # GCS API endpoint. None means the provider's public endpoint.
    endpoint_url: str | None = None
    region: str | None = None
    # Path-style (endpoint/bucket/key) addressing, needed by most
    # S3-compatible servers that have no wildcard DNS.
    path_style: bool = False

    # Names of environment variables holding S3 credentials. When unset, boto3's
    # default chain applies (AWS_* variables, IRSA / pod identity, instance role).
    access_key_id_env: EnvName = None
    secret_access_key_env: EnvName = None
    session_token_env: EnvName = None
    # A mounted Secret: AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY [/ AWS_SESSION_TOKEN]
    # files for S3, key.json (a service-account key) for GCS. Wins over the above.
    secret_dir: Path | None = None
    # Unsigned requests: public buckets and emulators.
    anonymous: bool = False
    gcs_project: str | None = None

    # Above this size S3 uploads go multipart and GCS uploads go resumable.
    multipart_threshold: int = Field(default=64 * MiB, ge=1)
    # S3 rejects parts under 5 MiB (except the last one).
    multipart_chunksize: int = Field(default=16 * MiB, ge=5 * MiB)
    # GCS requires resumable chunks in multiples of 256 KiB.
    gcs_chunk_size: int = Field(default=16 * MiB, ge=256 * 1024, multiple_of=256 * 1024)
    max_concurrency: int = Field(default=4, ge=1)

    connect_timeout: float = Field(default=10.0, gt=0)
    read_timeout: float = Field(default=60.0, gt=0)
    # S3: attempts per request; GCS: total seconds spent retrying one call.
    max_attempts: int = Field(default=5, ge=1)
    retry_deadline: float = Field(default=120.0, gt=0)

    # file:// only: URIs must lie under this directory, and its absence means
    # the shared volume is not mounted (reported as StorageUnavailable).
    local_root: Path | None = None

    def s3_credentials(self) -> S3Credentials | None:
        """Static credentials from the Secret directory or named env vars; None
        leaves the SDK's default chain in charge."""
        if self.secret_dir is not None:
            key_file = self.secret_dir / SECRET_ACCESS_KEY_ID
            if key_file.is_file():
                return S3Credentials(
                    key_file.read_text().strip(),
                    _read_required(self.secret_dir / SECRET_SECRET_ACCESS_KEY),
                    _read_optional(self.secret_dir / SECRET_SESSION_TOKEN),
                )
        if self.access_key_id_env is None:
            return None
        if self.secret_access_key_env is None:
            raise AccessDenied("access_key_id_env is set but secret_access_key_env is not")
        return S3Credentials(
            _env_required(self.access_key_id_env),
            _env_required(self.secret_access_key_env),
            os.environ.get(self.session_token_env) if self.session_token_env else None,
        )

    def gcs_key_file(self) -> Path | None:
        if self.secret_dir is None:
            return None
        path = self.secret_dir / SECRET_GCS_KEY
        return path if path.is_file() else None


def _read_required(path: Path) -> str:
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        raise AccessDenied(f"credential file {path} is missing") from None


def _read_optional(path: Path) -> str | None:
    return path.read_text().strip() if path.is_file() else None


def _env_required(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise AccessDenied(f"environment variable {name} is not set")
    return value
