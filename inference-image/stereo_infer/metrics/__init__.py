"""Conversion metrics of the inference image, through one adapter chosen by configuration
(``stereo_infer.metrics.config``): Prometheus (default), CloudWatch or Cloud Monitoring, so
the same image reports wherever it runs.

Reporting never fails a conversion: an adapter that cannot be set up or cannot send logs a
warning and the conversion's result stands.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping

from stereo_infer.metrics.base import Conversion, MetricsSink
from stereo_infer.metrics.config import MetricsBackend, MetricsConfig, MetricsConfigError

__all__ = [
    "Conversion",
    "MetricsBackend",
    "MetricsConfig",
    "MetricsConfigError",
    "MetricsSink",
    "open_sink",
    "report",
]

log = logging.getLogger(__name__)


def open_sink(config: MetricsConfig) -> MetricsSink | None:
    """The configured adapter; None when metrics are off or have nowhere to go."""
    match config.backend:
        case MetricsBackend.NONE:
            return None
        case MetricsBackend.PROMETHEUS:
            if config.pushgateway is None and config.textfile is None:
                return None  # the default with no target: nothing to report to
            from stereo_infer.metrics.prometheus import PrometheusSink

            return PrometheusSink(config.pushgateway, config.textfile, config.job, config.instance)
        case MetricsBackend.CLOUDWATCH:
            from stereo_infer.metrics.cloudwatch import CloudWatchSink

            assert config.region is not None  # MetricsConfig.from_env insists
            return CloudWatchSink(config.namespace, config.region, config.endpoint)
        case MetricsBackend.CLOUDMONITORING:
            from stereo_infer.metrics.cloudmonitoring import CloudMonitoringSink

            assert config.project is not None  # MetricsConfig.from_env insists
            return CloudMonitoringSink(config.project, config.namespace)


_lock = threading.Lock()
_sinks: dict[MetricsConfig, MetricsSink | None] = {}


def _sink_for(env: Mapping[str, str]) -> MetricsSink | None:
    # One sink per configuration for the process's life: the server's totals accumulate.
    config = MetricsConfig.from_env(env)
    with _lock:
        if config not in _sinks:
            _sinks[config] = open_sink(config)
        return _sinks[config]


def report(conversion: Conversion, env: Mapping[str, str] | None = None) -> bool:
    """Send one conversion's figures through the configured adapter; whether they went.
    Any failure is logged as a warning, never raised."""
    try:
        sink = _sink_for(os.environ if env is None else env)
        if sink is None:
            return False
        sink.record(conversion)
    except Exception as exc:
        log.warning("conversion metrics not reported: %s: %s", type(exc).__name__, exc)
        return False
    return True
