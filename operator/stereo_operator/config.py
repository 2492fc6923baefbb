"""The operator's own configuration: a YAML file (the chart's ConfigMap) plus env overrides.

What belongs to the cluster (images, GPU counts, node placement, caps) lives here, not in
VideoJob specs, so users cannot ask for more than the platform engineers allow.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Self

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

from stereo_storage import StorageConfig

CONFIG_ENV = "STEREO_OPERATOR_CONFIG"


class _Model(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class PodTemplate(_Model):
    """What every pod the operator creates of one kind looks like."""

    image: str = "ghcr.io/stereo-operator/inference:latest"
    image_pull_policy: str = "IfNotPresent"
    command: list[str] = Field(default_factory=lambda: ["stereo-infer"])
    gpus: int = Field(default=0, ge=0, le=16)
    resources: dict[str, Any] = Field(default_factory=dict)
    node_selector: dict[str, str] = Field(default_factory=dict)
    tolerations: list[dict[str, Any]] = Field(default_factory=list)
    service_account_name: str | None = None
    priority_class_name: str | None = None
    runtime_class_name: str | None = None
    """RuntimeClass of the pods that get GPUs; a VideoJob's backend.runtimeClassName wins."""
    env: list[dict[str, Any]] = Field(default_factory=list)
    env_from: list[dict[str, Any]] = Field(default_factory=list)
    labels: dict[str, str] = Field(default_factory=dict)
    ttl_seconds_after_finished: int = Field(default=3600, ge=0)
    volumes: list[dict[str, Any]] = Field(default_factory=list)
    """Extra pod volumes (a model cache, a shared workspace), mounted by volume_mounts."""
    volume_mounts: list[dict[str, Any]] = Field(default_factory=list)
    pod_security_context: dict[str, Any] = Field(default_factory=dict)
    security_context: dict[str, Any] = Field(default_factory=dict)
    """The container's security context."""

    @model_validator(mode="after")
    def _mounts_name_volumes(self) -> Self:
        # The API server would refuse each Job; say so once, at start-up.
        names = {v.get("name") for v in self.volumes}
        unknown = sorted({str(m.get("name")) for m in self.volume_mounts} - names)
        if unknown:
            raise ValueError(f"volumeMounts name volumes that are not in volumes: {unknown}")
        return self


def _inference_template() -> PodTemplate:
    return PodTemplate(gpus=1, tolerations=[{"key": "nvidia.com/gpu", "operator": "Exists"}])


class LivenessConfig(_Model):
    """The liveness endpoint fails when the operator's watch streams have gone silent: the
    operator renews a heartbeat Lease and watches it come back through kopf's streams."""

    heartbeat_seconds: float = Field(default=10.0, gt=0, le=300)
    """How often the heartbeat Lease is renewed."""
    timeout_seconds: float = Field(default=120.0, gt=0, le=3600)
    """Liveness fails once a renewal has not come back through the watch within this long.
    Longer than kopf's 70 s inactivity timeout, so a stalled stream gets its reconnect first."""
    lease_name: str = Field(
        default="stereo-operator-heartbeat",
        max_length=253,
        pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$",
    )
    """The Lease, in the operator's namespace (or the first namespace it serves)."""

    @model_validator(mode="after")
    def _timeout_exceeds_heartbeat(self) -> Self:
        if self.timeout_seconds <= self.heartbeat_seconds:
            raise ValueError(
                f"liveness.timeoutSeconds ({self.timeout_seconds:g}) must exceed "
                f"liveness.heartbeatSeconds ({self.heartbeat_seconds:g})"
            )
        return self


class OperatorConfig(_Model):
    workspace: str = "file:///var/lib/stereo/workspace"
    """Storage root for intermediates when a VideoJob names none."""
    max_inflight: int = Field(default=16, ge=1, le=10_000)
    """Most inference Jobs running at once, across every VideoJob in the cluster."""
    queue_name: str | None = None
    """Kueue LocalQueue for inference Jobs (label kueue.x-k8s.io/queue-name)."""
    inference: PodTemplate = Field(default_factory=_inference_template)
    media: PodTemplate = Field(default_factory=PodTemplate)
    """Split and assemble Jobs (CPU only)."""
    reconcile_seconds: float = Field(default=5.0, gt=0, le=300)
    """How often each VideoJob is reconciled from cluster state."""
    segment_creates_per_tick: int = Field(default=100, ge=1, le=5_000)
    """Rate limit on Segment creation so a 2,000-segment VideoJob does not flood the API."""
    storage: StorageConfig = Field(default_factory=StorageConfig)
    """How the operator reaches the workspaces (plan, output checks, cleanup). Names where
    credentials live, never holds them; keys are snake_case as in stereo_storage."""
    cleanup_attempts: int = Field(default=3, ge=1, le=20)
    """Tries at deleting a deleted VideoJob's files before letting it go with a Warning."""
    liveness: LivenessConfig = Field(default_factory=LivenessConfig)
    watch_timeout_seconds: int | None = Field(default=None, ge=1, le=3600)
    """The API server ends each watch request after this long and kopf opens it again
    (checking permissions anew); None: the server's own limit (30 to 60 minutes)."""


def load_config(path: Path | None = None) -> OperatorConfig:
    """Read the config file (if any) named by STEREO_OPERATOR_CONFIG or `path`."""
    path = path or (Path(os.environ[CONFIG_ENV]) if os.environ.get(CONFIG_ENV) else None)
    if path is None:
        return OperatorConfig()
    data = yaml.safe_load(path.read_text()) or {}
    return OperatorConfig.model_validate(data)
