"""Watcher configuration: a YAML file plus ``STEREO_WATCHER_*`` environment overrides.

The file is named by ``--config`` or ``STEREO_WATCHER_CONFIG``. Keys may be camelCase (as in
the chart's ConfigMap) or snake_case. Every setting can be overridden from the environment:
``STEREO_WATCHER_MAX_CONCURRENCY=32``, nested settings with a double underscore
(``STEREO_WATCHER_WEBHOOK__TOKEN_FILE=/var/run/secrets/webhook/token``), lists and objects as
YAML flow text (``STEREO_WATCHER_ROOTS='[s3://bucket/ws, gs://other/ws]'``).
"""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, Self

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.alias_generators import to_camel

from stereo_types.layout import StorageRoot
from stereo_types.names import is_dns1123_label

CONFIG_ENV = "STEREO_WATCHER_CONFIG"
ENV_PREFIX = "STEREO_WATCHER_"
DEFAULT_TOKEN_ENV = "STEREO_WATCHER_WEBHOOK_TOKEN"
# Variables under the prefix that are not settings.
_NOT_SETTINGS = frozenset({CONFIG_ENV, DEFAULT_TOKEN_ENV})


class ConfigError(ValueError):
    """The configuration cannot be loaded; the message says what to fix."""


class _Model(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True
    )


class SqsQueueConfig(_Model):
    """One SQS queue receiving S3 event notifications (directly, through SNS or through an
    EventBridge rule that targets the queue)."""

    queue_url: str = Field(min_length=1)
    region: str | None = None
    """AWS region; default from the environment (AWS_REGION / AWS_DEFAULT_REGION)."""
    endpoint_url: str | None = None
    """For S3-compatible stacks and tests; AWS_ENDPOINT_URL works too."""
    wait_time_seconds: int = Field(default=20, ge=0, le=20)
    """Long-poll time of one ReceiveMessage."""
    visibility_timeout_seconds: int = Field(default=60, ge=1, le=43_200)
    """How long a received message stays hidden while it is applied."""
    max_messages: int = Field(default=10, ge=1, le=10)
    """Messages asked for per ReceiveMessage."""
    max_inflight: int = Field(default=32, ge=1, le=10_000)
    """Received messages being applied at once; receiving pauses beyond this."""
    retry_delay_seconds: float = Field(default=2.0, gt=0, le=43_200)
    """Visibility delay after the first failed attempt; doubles per receive."""
    max_retry_delay_seconds: float = Field(default=120.0, gt=0, le=43_200)


class PubSubSubscriptionConfig(_Model):
    """One Pub/Sub subscription on a GCS notification topic, read by streaming pull (payload
    format JSON_API_V1, or NONE: then the watcher reads each segment output's size)."""

    subscription: str = Field(pattern=r"^projects/[^/]+/subscriptions/[^/]+$")
    """Full name: projects/<project>/subscriptions/<name>."""
    max_messages: int = Field(default=100, ge=1, le=10_000)
    """Flow control: messages leased and not yet acknowledged."""
    max_lease_extension_seconds: int = Field(default=60, ge=10, le=600)
    """Longest ack-deadline extension; a killed watcher's messages return after this."""


WebhookEndpoint = Literal["minio", "seaweedfs"]
GOOGLE_CERTS_URL = "https://www.googleapis.com/oauth2/v1/certs"
GOOGLE_ISSUERS = ("accounts.google.com", "https://accounts.google.com")


class PubSubOidcConfig(_Model):
    """Verify the OIDC token a Pub/Sub push subscription sends (its --push-auth-* flags)."""

    audience: str = Field(min_length=1)
    """The audience the subscription puts in its tokens (--push-auth-token-audience; by
    default the push endpoint's URL)."""
    service_account_email: str | None = Field(default=None, min_length=3)
    """The subscription's --push-auth-service-account; tokens of any other account are
    refused. Unset: any Google-signed token for the audience is accepted."""
    certs_url: str = Field(default=GOOGLE_CERTS_URL, pattern=r"^https?://")
    """Where the signing keys are published ({key id: PEM certificate})."""
    issuers: list[str] = Field(default_factory=lambda: list(GOOGLE_ISSUERS), min_length=1)
    clock_skew_seconds: int = Field(default=10, ge=0, le=300)
    """Tolerance for the token's iat and exp."""


def _seaweedfs_only() -> list[WebhookEndpoint]:
    return ["seaweedfs"]


class WebhookConfig(_Model):
    """The HTTP endpoints MinIO, the SeaweedFS filer and Pub/Sub push subscriptions post
    events to."""

    minio: bool = True
    """Serve POST /events/minio (S3 event format as MinIO posts it)."""
    seaweedfs: bool = True
    """Serve POST /events/seaweedfs (SeaweedFS filer webhook notifications)."""
    pubsub: bool = False
    """Serve POST /events/pubsub (Cloud Storage notifications from a Pub/Sub push
    subscription). It accepts the bearer token below (as the Authorization header or a
    ``token`` query parameter of the push endpoint URL) and, with pubsub_oidc, the OIDC
    token Pub/Sub signs."""
    pubsub_oidc: PubSubOidcConfig | None = None
    token_file: Path | None = None
    """File with the bearer token (one per line to rotate); re-read when it changes."""
    token_env: str = DEFAULT_TOKEN_ENV
    """Environment variable with the bearer token, used when token_file is unset."""
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024, le=64 * 1024 * 1024)
    seaweedfs_buckets_dir: str = Field(default="/buckets", pattern=r"^/")
    """The filer folder holding the S3 buckets (SeaweedFS default: /buckets)."""
    retry_budget_seconds: float = Field(default=5.0, ge=0, le=300)
    """How long one request retries an unreachable API server before answering 503 (or 202
    with a spool). Keep it below the sender's timeout (SeaweedFS timeout_seconds: 10)."""
    spool_dir: Path | None = None
    """Write-ahead spool for webhook events (see spool.py): needed for SeaweedFS, whose filer
    never retries a failed post. Unset: failures answer 503 and rely on the sender."""
    spool_endpoints: list[WebhookEndpoint] = Field(default_factory=_seaweedfs_only)
    """Endpoints whose events go through the spool (MinIO has a queue store of its own)."""

    @property
    def enabled(self) -> bool:
        return self.minio or self.seaweedfs or self.pubsub

    @property
    def needs_token(self) -> bool:
        """Whether an endpoint accepts nothing but the bearer token."""
        return self.minio or self.seaweedfs or (self.pubsub and self.pubsub_oidc is None)

    @model_validator(mode="after")
    def _oidc_needs_the_endpoint(self) -> Self:
        if self.pubsub_oidc is not None and not self.pubsub:
            raise ValueError("webhook.pubsubOidc is set but webhook.pubsub (the endpoint) is off")
        return self


class HttpConfig(_Model):
    host: str = "0.0.0.0"
    port: int = Field(default=8080, ge=0, le=65_535)


class KubernetesConfig(_Model):
    kubeconfig: Path | None = None
    """Kubeconfig file; default KUBECONFIG, else in-cluster, else ~/.kube/config."""
    request_timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    probe_interval_seconds: float = Field(default=5.0, gt=0, le=300)
    """How often the API server is asked for /version when nothing else talked to it."""
    ready_window_seconds: float = Field(default=30.0, gt=0, le=3600)
    """Ready only if the API server answered within this window."""
    conflict_retries: int = Field(default=10, ge=0, le=1000)
    """Re-reads after a 409 Conflict before the event is retried later."""


class RetryConfig(_Model):
    initial_backoff_seconds: float = Field(default=0.2, gt=0, le=60)
    max_backoff_seconds: float = Field(default=10.0, gt=0, le=600)
    queue_budget_seconds: float = Field(default=20.0, ge=0, le=3600)
    """How long a queued event (SQS, Pub/Sub) retries before it is released for redelivery."""


class WatcherConfig(_Model):
    roots: list[str] = Field(min_length=1, max_length=64)
    """Workspace roots (s3://bucket/prefix, gs://bucket/prefix) whose segment outputs count."""
    namespaces: list[str] = Field(default_factory=list)
    """Only these namespaces; empty for all."""
    sqs: list[SqsQueueConfig] = Field(default_factory=list)
    pubsub: list[PubSubSubscriptionConfig] = Field(default_factory=list)
    webhook: WebhookConfig = Field(default_factory=WebhookConfig)
    http: HttpConfig = Field(default_factory=HttpConfig)
    kubernetes: KubernetesConfig = Field(default_factory=KubernetesConfig)
    retry: RetryConfig = Field(default_factory=RetryConfig)
    max_concurrency: int = Field(default=16, ge=1, le=1024)
    """Events being applied (API requests in flight) at once, all sources together."""
    pending_segment_grace_seconds: float = Field(default=30.0, ge=0, le=3600)
    """An output whose VideoJob exists but whose Segment does not (yet) is retried while
    the event is younger than this, then acknowledged."""
    shutdown_grace_seconds: float = Field(default=25.0, ge=0, le=3600)
    """After SIGTERM, how long in-flight events may take to finish."""
    log_level: str = Field(default="INFO", pattern=r"^(DEBUG|INFO|WARNING|ERROR)$")

    @field_validator("roots", "namespaces", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("roots")
    @classmethod
    def _valid_roots(cls, roots: list[str]) -> list[str]:
        for root in roots:
            parsed = StorageRoot.parse(root)  # ValueError names what is wrong
            if parsed.scheme == "file":
                raise ValueError(f"workspace root {root!r}: file:// roots have no event source")
        return roots

    @field_validator("namespaces")
    @classmethod
    def _valid_namespaces(cls, namespaces: list[str]) -> list[str]:
        bad = [ns for ns in namespaces if not is_dns1123_label(ns)]
        if bad:
            raise ValueError(f"not namespace names: {bad}")
        return namespaces

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if not (self.sqs or self.pubsub or self.webhook.enabled):
            raise ValueError("no event source: configure sqs, pubsub or a webhook")
        for queue in self.sqs:
            if queue.visibility_timeout_seconds <= self.retry.queue_budget_seconds:
                raise ValueError(
                    f"sqs queue {queue.queue_url}: visibilityTimeoutSeconds "
                    f"({queue.visibility_timeout_seconds}) must exceed retry.queueBudgetSeconds "
                    f"({self.retry.queue_budget_seconds}), or a message being retried "
                    "would be delivered again meanwhile"
                )
        return self

    def storage_roots(self) -> list[StorageRoot]:
        return [StorageRoot.parse(root) for root in self.roots]


def _env_value(raw: str) -> Any:
    # Lists and objects as YAML flow text; scalars stay strings (pydantic converts them).
    if raw.lstrip().startswith(("[", "{")):
        try:
            return yaml.safe_load(raw)
        except yaml.YAMLError as exc:
            raise ConfigError(f"cannot parse {raw!r} as YAML: {exc}") from None
    return raw


def _set_path(target: dict[str, Any], path: list[str], value: Any, name: str) -> None:
    node = target
    for part in path[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"{name}: {part!r} is not a section")
        node = child
    node[path[-1]] = value


def _find_key(section: Mapping[str, Any], snake: str) -> str:
    # An override must replace the file's value whichever spelling the file used.
    camel = to_camel(snake)
    return camel if camel in section and snake not in section else snake


def apply_env(data: dict[str, Any], environ: Mapping[str, str]) -> dict[str, Any]:
    """data with every STEREO_WATCHER_* variable applied on top."""
    merged = copy.deepcopy(data)
    for name in sorted(environ):
        if not name.startswith(ENV_PREFIX) or name in _NOT_SETTINGS:
            continue
        parts = [p.lower() for p in name[len(ENV_PREFIX) :].split("__") if p]
        if not parts:
            continue
        node: Mapping[str, Any] = merged
        path: list[str] = []
        for part in parts:
            key = _find_key(node, part)
            path.append(key)
            child = node.get(key)
            node = child if isinstance(child, dict) else {}
        _set_path(merged, path, _env_value(environ[name]), name)
    return merged


def load_config(
    path: Path | None = None, environ: Mapping[str, str] | None = None
) -> WatcherConfig:
    """The configuration from the file (path, else $STEREO_WATCHER_CONFIG) and the environment."""
    environ = os.environ if environ is None else environ
    if path is None and environ.get(CONFIG_ENV):
        path = Path(environ[CONFIG_ENV])
    data: dict[str, Any] = {}
    if path is not None:
        try:
            loaded = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"cannot read watcher config {path}: {exc}") from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"watcher config {path} is not a mapping")
        data = loaded
    data = apply_env(data, environ)
    try:
        return WatcherConfig.model_validate(data)
    except ValueError as exc:
        raise ConfigError(f"invalid watcher config: {exc}") from None
