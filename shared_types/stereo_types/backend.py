"""Where and how segment inference runs."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Self

from pydantic import ConfigDict, Field, StringConstraints, model_validator

from stereo_types.base import MAX_URI_LENGTH, SpecModel, between, cel_rule, cel_rules, one_of


class BackendType(StrEnum):
    JOB = "job"
    """A Kubernetes Job per segment on the cluster's GPU nodes."""
    HTTP = "http"
    """An HTTP inference service that the Job calls."""
    MANAGED = "managed"
    """A cloud-managed inference endpoint."""
    STUB = "stub"
    """No inference: copies input to output, for tests and dry runs."""


class Engine(StrEnum):
    IW3 = "iw3"
    BUILTIN = "builtin"
    COPY = "copy"


EngineChoice = Annotated[Engine, one_of(Engine)]
DEFAULT_ENGINE = Engine.BUILTIN

# Frames per forward pass: how an inference server or Job runs, not part of a VideoJob.
# None (the default) leaves it to the engine, per device.
MAX_BATCH_SIZE = 64
BatchSize = Annotated[int, between(int, ge=1, le=MAX_BATCH_SIZE)]


# A RuntimeClass name: a DNS subdomain, as Kubernetes checks it.
RuntimeClassName = Annotated[
    str,
    StringConstraints(
        max_length=253, pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
    ),
]


class HttpBackend(SpecModel):
    """An HTTP inference service."""

    url: Annotated[str, StringConstraints(max_length=MAX_URI_LENGTH, pattern=r"^https?://\S+$")]
    """Base URL of the service (http or https)."""
    timeout_seconds: int = Field(default=600, ge=1, le=86400)
    """Timeout of one inference request."""
    retries: int = Field(default=3, ge=0, le=10)
    """Retries of a failed request before the attempt fails."""


class ManagedBackend(SpecModel):
    """A cloud-managed inference endpoint."""

    endpoint_name: str = Field(
        min_length=1, max_length=512, pattern=r"^[A-Za-z0-9][-A-Za-z0-9_.:/@]*$"
    )
    """Name or resource path of the endpoint."""
    region: str = Field(min_length=1, max_length=64, pattern=r"^[a-z0-9][-a-z0-9]*$")
    """Cloud region of the endpoint."""
    failure_topic: str | None = Field(
        default=None, min_length=1, max_length=MAX_URI_LENGTH, pattern=r"^\S+$"
    )
    """Topic or queue the endpoint reports failed invocations to."""


# The same messages are raised by the pydantic validator and the CRD's CEL rules.
HTTP_REQUIRED = "backend.http is required when backend.type is 'http'"
HTTP_ONLY_FOR_HTTP = "backend.http is only allowed when backend.type is 'http'"
MANAGED_REQUIRED = "backend.managed is required when backend.type is 'managed'"
MANAGED_ONLY_FOR_MANAGED = "backend.managed is only allowed when backend.type is 'managed'"
STUB_REQUIRES_COPY = "backend.type 'stub' requires backend.engine 'copy'"

_BACKEND_RULES = cel_rules(
    cel_rule("self.type != 'http' || has(self.http)", HTTP_REQUIRED),
    cel_rule("!has(self.http) || self.type == 'http'", HTTP_ONLY_FOR_HTTP),
    cel_rule("self.type != 'managed' || has(self.managed)", MANAGED_REQUIRED),
    cel_rule("!has(self.managed) || self.type == 'managed'", MANAGED_ONLY_FOR_MANAGED),
    cel_rule("self.type != 'stub' || self.engine == 'copy'", STUB_REQUIRES_COPY),
)


class BackendSpec(SpecModel):
    """Where segment inference runs and which engine it uses."""

    model_config = ConfigDict(json_schema_extra=_BACKEND_RULES)

    type: BackendType = BackendType.JOB
    """Kind of backend."""
    engine: EngineChoice = DEFAULT_ENGINE
    """Inference engine; the stub backend requires 'copy'."""
    http: HttpBackend | None = None
    """Settings of the http backend; only with type 'http'."""
    managed: ManagedBackend | None = None
    """Settings of the managed backend; only with type 'managed'."""
    runtime_class_name: RuntimeClassName | None = None
    """RuntimeClass of the inference pods that get GPUs (e.g. 'nvidia', where the cluster's
    GPU container runtime is not the default one). Default: the operator's
    (the chart's jobs.inference.runtimeClassName)."""

    @model_validator(mode="after")
    def _settings_match_type(self) -> Self:
        if self.type is BackendType.HTTP and self.http is None:
            raise ValueError(HTTP_REQUIRED)
        if self.type is not BackendType.HTTP and self.http is not None:
            raise ValueError(HTTP_ONLY_FOR_HTTP)
        if self.type is BackendType.MANAGED and self.managed is None:
            raise ValueError(MANAGED_REQUIRED)
        if self.type is not BackendType.MANAGED and self.managed is not None:
            raise ValueError(MANAGED_ONLY_FOR_MANAGED)
        if self.type is BackendType.STUB and self.engine is not Engine.COPY:
            raise ValueError(STUB_REQUIRES_COPY)
        return self
