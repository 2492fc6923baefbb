"""Which metrics adapter the image reports through, from its environment.

STEREO_METRICS              prometheus (default) | cloudwatch | cloudmonitoring | none
STEREO_METRICS_NAMESPACE    CloudWatch namespace / Cloud Monitoring metric prefix
                            (default "stereo")
STEREO_METRICS_PUSHGATEWAY  Prometheus: Pushgateway URL the figures are pushed to
STEREO_METRICS_TEXTFILE     Prometheus: file the figures are written to (node exporter's
                            textfile collector)
STEREO_METRICS_JOB          Prometheus: the Pushgateway job name (default "stereo-infer")
STEREO_METRICS_REGION       CloudWatch region (default AWS_REGION / AWS_DEFAULT_REGION)
STEREO_METRICS_ENDPOINT     CloudWatch endpoint URL (default: boto3's, which honours
                            AWS_ENDPOINT_URL_CLOUDWATCH)
STEREO_METRICS_PROJECT      Cloud Monitoring project (default GOOGLE_CLOUD_PROJECT)
"""

from __future__ import annotations

import socket
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum


class MetricsBackend(StrEnum):
    PROMETHEUS = "prometheus"
    CLOUDWATCH = "cloudwatch"
    CLOUDMONITORING = "cloudmonitoring"
    NONE = "none"


class MetricsConfigError(ValueError):
    """The metrics settings name an unknown adapter or lack what it needs."""


@dataclass(frozen=True)
class MetricsConfig:
    backend: MetricsBackend = MetricsBackend.PROMETHEUS
    namespace: str = "stereo"
    pushgateway: str | None = None
    textfile: str | None = None
    job: str = "stereo-infer"
    instance: str = ""
    region: str | None = None
    endpoint: str | None = None
    project: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> MetricsConfig:
        raw = env.get("STEREO_METRICS", "").strip().lower() or MetricsBackend.PROMETHEUS.value
        try:
            backend = MetricsBackend(raw)
        except ValueError:
            known = ", ".join(b.value for b in MetricsBackend)
            raise MetricsConfigError(f"STEREO_METRICS must be one of {known}: {raw!r}") from None
        config = cls(
            backend=backend,
            namespace=env.get("STEREO_METRICS_NAMESPACE") or "stereo",
            pushgateway=env.get("STEREO_METRICS_PUSHGATEWAY") or None,
            textfile=env.get("STEREO_METRICS_TEXTFILE") or None,
            job=env.get("STEREO_METRICS_JOB") or "stereo-infer",
            # The pod's name: one Pushgateway group per pod, never overwriting another's.
            instance=env.get("HOSTNAME") or socket.gethostname(),
            region=env.get("STEREO_METRICS_REGION")
            or env.get("AWS_REGION")
            or env.get("AWS_DEFAULT_REGION")
            or None,
            endpoint=env.get("STEREO_METRICS_ENDPOINT") or None,
            project=env.get("STEREO_METRICS_PROJECT") or env.get("GOOGLE_CLOUD_PROJECT") or None,
        )
        if backend is MetricsBackend.CLOUDWATCH and config.region is None:
            raise MetricsConfigError(
                "STEREO_METRICS=cloudwatch needs a region: STEREO_METRICS_REGION or AWS_REGION"
            )
        if backend is MetricsBackend.CLOUDMONITORING and config.project is None:
            raise MetricsConfigError(
                "STEREO_METRICS=cloudmonitoring needs a project: STEREO_METRICS_PROJECT"
                " or GOOGLE_CLOUD_PROJECT"
            )
        return config
