"""stereoctl's own settings: which cluster and namespace, and the object store for uploads.

They come from a small YAML file (`--config`, $STEREOCTL_CONFIG, or
~/.config/stereoctl/config.yaml), which `stereoctl dev up` writes for the embedded stack:

    kubeconfig: /path/admin.kubeconfig   # optional; --kubeconfig and $KUBECONFIG win
    namespace: default                   # optional; --namespace wins
    operatorNamespace: stereo-system     # optional; where the chart is (default: search all)
    store:
      root: s3://bucket/prefix           # uploads go under <root>/_uploads/
      endpoint: http://127.0.0.1:8333    # S3-compatible servers only
      region: us-east-1
      pathStyle: true
      accessKeyId: ...                   # or leave both out for the SDK's default chain
      secretAccessKey: ...

Without a file, the store comes from the operator's ConfigMap in the cluster (cluster_store).
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator
from pydantic.alias_generators import to_camel

from stereo_storage import StorageConfig
from stereo_types.layout import StorageRoot
from stereoctl.errors import InputError

CONFIG_ENV = "STEREOCTL_CONFIG"
# StorageConfig names the environment variables holding S3 keys rather than the keys.
ACCESS_KEY_ENV = "STEREOCTL_AWS_ACCESS_KEY_ID"
SECRET_KEY_ENV = "STEREOCTL_AWS_SECRET_ACCESS_KEY"


class _Model(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class StoreSettings(_Model):
    """Where uploads go and how to reach the store."""

    root: str
    endpoint: str | None = None
    region: str | None = None
    path_style: bool = False
    access_key_id: str | None = None
    secret_access_key: str | None = None

    @field_validator("root")
    @classmethod
    def _root_is_valid(cls, value: str) -> str:
        return StorageRoot.parse(value).uri

    def storage_config(self) -> StorageConfig:
        """The adapters' settings; the keys are handed over through the environment."""
        if self.access_key_id and self.secret_access_key:
            os.environ[ACCESS_KEY_ENV] = self.access_key_id
            os.environ[SECRET_KEY_ENV] = self.secret_access_key
            keys = {"access_key_id_env": ACCESS_KEY_ENV, "secret_access_key_env": SECRET_KEY_ENV}
        else:
            keys = {}
        return StorageConfig(
            endpoint_url=self.endpoint, region=self.region, path_style=self.path_style, **keys
        )


class CliConfig(_Model):
    kubeconfig: str | None = None
    namespace: str | None = None
    operator_namespace: str | None = None
    """Where to read the chart's ConfigMap when the file names no store; None: every namespace."""
    store: StoreSettings | None = None
    origin: str | None = None
    """Who wrote the file (`stereoctl dev up <state dir>`), so `dev down` removes only its own."""


def default_path() -> Path:
    if os.environ.get(CONFIG_ENV):
        return Path(os.environ[CONFIG_ENV])
    base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return base / "stereoctl" / "config.yaml"


def load(path: Path | None) -> CliConfig:
    """The file at path (or the default path); an absent default file is an empty config."""
    target = path or default_path()
    if not target.exists():
        if path is not None:
            raise InputError(f"config file not found: {path}")
        return CliConfig()
    try:
        data = yaml.safe_load(target.read_text()) or {}
        return CliConfig.model_validate(data)
    except (yaml.YAMLError, ValidationError) as exc:
        first = str(exc).splitlines()
        raise InputError(f"invalid config file {target}: {' '.join(first[:3])}") from None


def save(config: CliConfig, path: Path) -> None:
    """Write the file readable by its owner only: it may hold store keys."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = yaml.safe_dump(config.model_dump(by_alias=True, exclude_none=True), sort_keys=False)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
