"""`stereo-operator` / `python -m stereo_operator`: run the operator.

    stereo-operator [--kubeconfig PATH] [--config PATH] [--namespace NS ...]
                    [--liveness URL] [--metrics-port N]
                    [--peering NAME | --standalone] [--priority N] [--peering-lifetime S]
                    [--log-format json|text] [--verbose]

Every option also reads an environment variable (STEREO_OPERATOR_<OPTION>), which is how the
chart sets them.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import kopf

from stereo_operator import labels, liveness
from stereo_operator.config import OperatorConfig, load_config
from stereo_operator.handlers import register
from stereo_operator.kube import Kube, api_client
from stereo_operator.storage import Workspace
from stereo_operator.tick import Runtime
from stereo_types.labels import CLEANUP_FINALIZER

log = logging.getLogger("stereo_operator")

GROUP_PREFIX = "operator.stereo.dev"
DEFAULT_PEERING = "stereo-operator"
WRITER_THREADS = 8


def _env(name: str, default: str | None = None) -> str | None:
    return os.environ.get(f"STEREO_OPERATOR_{name}", default)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="stereo-operator", description=__doc__.split("\n")[0])
    p.add_argument("--kubeconfig", default=_env("KUBECONFIG"), help="default: in-cluster")
    p.add_argument("--config", default=None, help="YAML file; default $STEREO_OPERATOR_CONFIG")
    p.add_argument(
        "--namespace",
        action="append",
        default=[n for n in (_env("NAMESPACES") or "").split(",") if n],
        help="serve only this namespace (repeatable); default: the whole cluster",
    )
    p.add_argument("--liveness", default=_env("LIVENESS"), help="e.g. http://0.0.0.0:8080/healthz")
    p.add_argument("--metrics-port", type=int, default=int(_env("METRICS_PORT", "0") or 0))
    peering = p.add_mutually_exclusive_group()
    peering.add_argument(
        "--peering",
        default=_env("PEERING", DEFAULT_PEERING),
        help="kopf peering object shared by the replicas (default %(default)s)",
    )
    peering.add_argument(
        "--standalone",
        action="store_true",
        default=_env("STANDALONE", "") in ("1", "true", "yes"),
        help="run without peering (a single replica)",
    )
    p.add_argument(
        "--priority",
        type=int,
        default=int(_env("PRIORITY", "0") or 0) or None,
        help="peering priority; default: earlier start = higher, so replicas queue up",
    )
    p.add_argument(
        "--peering-lifetime",
        type=int,
        default=int(_env("PEERING_LIFETIME", "60") or 60),
        help="seconds before a silent replica is taken for dead",
    )
    p.add_argument("--log-format", choices=["json", "text"], default=_env("LOG_FORMAT", "json"))
    p.add_argument("--verbose", action="store_true")
    return p


class _DropTimerSuccess(logging.Filter):
    """kopf logs every successful timer run at INFO: once per VideoJob per tick; and every
    heartbeat the watch delivers."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        routine = message.startswith(("Timer ", "Handler 'heartbeat' "))
        return not (routine and message.endswith(" succeeded."))


def configure_logging(log_format: str, verbose: bool) -> None:
    kopf.configure(
        verbose=verbose,
        log_format=kopf.LogFormat.JSON if log_format == "json" else kopf.LogFormat.FULL,
    )
    for handler in logging.getLogger().handlers:
        handler.addFilter(_DropTimerSuccess())
    logging.getLogger("stereo_operator").setLevel(logging.DEBUG if verbose else logging.INFO)


def settings_for(args: argparse.Namespace, config: OperatorConfig) -> kopf.OperatorSettings:
    settings = kopf.OperatorSettings()
    # The VideoJob and Segment status schemas are strict: kopf's default progress storage
    # (status.kopf) would be pruned by the API server. Annotations take anything.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP_PREFIX)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=GROUP_PREFIX, key="last-handled-configuration"
    )
    settings.persistence.finalizer = CLEANUP_FINALIZER
    # kopf posts its object-log lines of this level and above as Events. INFO would make an
    # Event (an API request) of each handler success; the operator posts its own Events.
    settings.posting.level = logging.WARNING
    # Watch only the Jobs and Segments the operator made (server-side filtering).
    settings.watching.label_selectors["batch", "v1", "jobs"] = labels.VIDEOJOB_UID
    settings.watching.label_selectors["stereo.dev", "segments"] = labels.VIDEOJOB_UID
    settings.peering.lifetime = args.peering_lifetime
    settings.peering.stealth = True
    settings.watching.server_timeout = config.watch_timeout_seconds
    return settings


def heartbeat_target(config: OperatorConfig, namespaces: list[str]) -> liveness.Target:
    """In the first namespace served (kopf watches no other), else the operator's own."""
    namespace = namespaces[0] if namespaces else os.environ.get("POD_NAMESPACE") or "default"
    return liveness.Target(namespace, config.liveness.lease_name)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        endpoint = liveness.Endpoint.parse(args.liveness) if args.liveness else None
    except ValueError as exc:
        parser.error(str(exc))
    configure_logging(args.log_format, args.verbose)
    operator_config = load_config(Path(args.config) if args.config else None)
    api = api_client(args.kubeconfig, WRITER_THREADS + 2)
    kube = Kube(api)
    runtime = Runtime(
        config=operator_config,
        kube=kube,
        workspace=Workspace(operator_config.storage),
        pool=ThreadPoolExecutor(WRITER_THREADS, thread_name_prefix="stereo-write"),
        metrics_port=args.metrics_port,
        kubeconfig=args.kubeconfig,
    )
    registry = kopf.OperatorRegistry()
    register(registry, runtime)
    namespaces = list(dict.fromkeys(args.namespace))
    settings = settings_for(args, operator_config)
    peering: dict[str, object] = {"standalone": True}
    peers: liveness.Peering | None = None
    if not args.standalone:
        # Earlier start, higher priority: a second replica waits (paused) instead of
        # pausing both, as equal priorities would.
        priority = args.priority if args.priority is not None else -int(time.time() * 1000)
        peering = {"peering_name": args.peering, "priority": priority}
        peers = liveness.Peering(args.peering, namespaces[0] if namespaces else None, priority)
        for namespace in namespaces or [None]:
            kube.ensure_peering(args.peering, namespace)
    if endpoint is not None:
        # Served by the operator itself, not kopf: kopf's endpoint answers while the event
        # loop runs, even when no watch delivers anything any more.
        target = heartbeat_target(operator_config, namespaces)
        liveness.register(registry, kube, operator_config.liveness, endpoint, target, peers)
        liveness.watch_only(settings, target)
    log.info(
        "starting: %s, %s",
        f"namespaces {namespaces}" if namespaces else "cluster-wide",
        "standalone" if args.standalone else f"peering {args.peering!r}",
    )
    kopf.run(
        registry=registry,
        settings=settings,
        clusterwide=not namespaces,
        namespaces=namespaces,
        **peering,  # type: ignore[arg-type]
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
