"""The watcher process: wires the sources, the applier and the HTTP server together.

Lifecycle: the HTTP server starts first (health answers at once), then the sources. SIGTERM
or SIGINT: readiness turns false, sources stop receiving (webhooks answer 503, Pub/Sub
messages still arriving are nacked, a pending SQS long poll's messages are made visible
again), in-flight events get ``shutdownGraceSeconds`` to finish and be acknowledged, then
everything closes and the process exits 0. Whatever was not acknowledged is redelivered.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any, Protocol

from stereo_operator.watcher.apply import Applier, Delivery
from stereo_operator.watcher.config import ConfigError, WatcherConfig, load_config
from stereo_operator.watcher.kube import KubeClient
from stereo_operator.watcher.logs import configure_logging
from stereo_operator.watcher.metrics import WatcherMetrics
from stereo_operator.watcher.objects import GcsObjectStat
from stereo_operator.watcher.oidc import OidcVerifier
from stereo_operator.watcher.pubsub import PubSubSource
from stereo_operator.watcher.server import HttpServer, TokenStore
from stereo_operator.watcher.spool import Spool
from stereo_operator.watcher.sqs import SqsSource

log = logging.getLogger("stereo_operator.watcher")


class Source(Protocol):
    kind: str
    name: str

    @property
    def connected(self) -> bool: ...

    def stop(self) -> None: ...

    async def run(self) -> None: ...

    async def drain(self) -> None: ...


class Watcher:
    def __init__(self, config: WatcherConfig, kube: KubeClient | None = None) -> None:
        self.config = config
        self.metrics = WatcherMetrics()
        self.tokens: TokenStore | None = None
        webhook = config.webhook
        if webhook.enabled:
            self.tokens = TokenStore(webhook.token_file, webhook.token_env)
            if webhook.needs_token and not self.tokens.configured:
                where = webhook.token_file or f"${webhook.token_env}"
                raise ConfigError(f"webhooks are enabled but no bearer token is set ({where})")
        self.oidc: OidcVerifier | None = None
        if webhook.pubsub and webhook.pubsub_oidc is not None:
            self.oidc = OidcVerifier.from_config(webhook.pubsub_oidc)
        # Cloud Storage notifications without payload need a read of the object (objects.py).
        self.object_stat = GcsObjectStat() if config.pubsub or webhook.pubsub else None
        self.kube = kube or KubeClient.from_kubeconfig(
            config.kubernetes.kubeconfig,
            config.kubernetes.request_timeout_seconds,
            max_connections=config.max_concurrency + 4,
        )
        self._stopping: asyncio.Event | None = None
        self._draining = False
        self.sources: list[Source] = []
        self.delivery: Delivery | None = None
        self.server: HttpServer | None = None

    # --- readiness -----------------------------------------------------------------------

    def api_reachable(self) -> bool:
        last = self.kube.last_answer
        window = self.config.kubernetes.ready_window_seconds
        return last is not None and time.monotonic() - last < window

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        checks: dict[str, Any] = {
            "apiServer": self.api_reachable(),
            "sources": {f"{s.kind}:{s.name}": s.connected for s in self.sources},
            "shuttingDown": self._draining,
        }
        if self.server is not None and self.config.webhook.enabled:
            checks["sources"]["webhooks"] = self.server.port is not None
        ready = checks["apiServer"] and all(checks["sources"].values()) and not self._draining
        return ready, checks

    async def _probe_api(self) -> None:
        interval = self.config.kubernetes.probe_interval_seconds
        while True:
            last = self.kube.last_answer
            if last is None or time.monotonic() - last >= interval:
                await self.kube.probe()
            self.metrics.api_up.set(1 if self.api_reachable() else 0)
            await asyncio.sleep(min(interval, 1.0))

    # --- lifecycle -----------------------------------------------------------------------

    def stop(self) -> None:
        if self._stopping is not None:
            self._stopping.set()

    async def run(self, ready: asyncio.Event | None = None) -> int:
        cfg = self.config
        self._stopping = asyncio.Event()
        applier = Applier(
            self.kube,
            cfg.storage_roots(),
            namespaces=cfg.namespaces,
            conflict_retries=cfg.kubernetes.conflict_retries,
            pending_segment_grace=cfg.pending_segment_grace_seconds,
            object_stat=self.object_stat,
        )
        self.delivery = Delivery(
            applier,
            self.metrics,
            max_concurrency=cfg.max_concurrency,
            initial_backoff=cfg.retry.initial_backoff_seconds,
            max_backoff=cfg.retry.max_backoff_seconds,
        )
        budget = cfg.retry.queue_budget_seconds
        for queue in cfg.sqs:
            self.sources.append(SqsSource(queue, self.delivery, self.metrics, retry_budget=budget))
        for sub in cfg.pubsub:
            self.sources.append(PubSubSource(sub, self.delivery, self.metrics, retry_budget=budget))
        spool = None
        if cfg.webhook.enabled and cfg.webhook.spool_dir is not None:
            spool = await asyncio.to_thread(Spool, cfg.webhook.spool_dir)
        self.server = HttpServer(
            cfg.webhook,
            self.delivery if cfg.webhook.enabled else None,
            self.metrics,
            self.tokens,
            self.readiness,
            spool,
            self.api_reachable,
            self.oidc,
        )
        await self.server.start(cfg.http.host, cfg.http.port)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self.stop)
        probe = asyncio.create_task(self._probe_api())
        runs = [asyncio.create_task(source.run()) for source in self.sources]
        replay = asyncio.create_task(
            self.server.replay_spool(
                self._stopping, cfg.retry.initial_backoff_seconds, cfg.retry.max_backoff_seconds
            )
        )
        log.info(
            "watcher started",
            extra={
                "port": self.server.port,
                "roots": cfg.roots,
                "sources": [f"{s.kind}:{s.name}" for s in self.sources]
                + (["webhooks"] if cfg.webhook.enabled else []),
            },
        )
        if ready is not None:
            ready.set()
        stop_wait = asyncio.create_task(self._stopping.wait())
        await asyncio.wait([stop_wait, *runs], return_when=asyncio.FIRST_COMPLETED)
        stop_wait.cancel()
        for run in runs:
            if run.done() and not run.cancelled() and run.exception() is not None:
                log.error("an event source failed", exc_info=run.exception())
        await self._shutdown(runs, [probe, replay])
        return 0

    async def _shutdown(
        self, runs: list[asyncio.Task[None]], helpers: list[asyncio.Task[None]]
    ) -> None:
        assert self.delivery is not None and self.server is not None
        grace = self.config.shutdown_grace_seconds
        log.info("shutting down", extra={"inflight": self.delivery.inflight, "grace_s": grace})
        self._draining = True
        self.server.draining = True
        for source in self.sources:
            source.stop()
        deadline = time.monotonic() + grace
        # Receiving loops end at once (a pending long poll is abandoned and released).
        if runs:
            await asyncio.wait(runs, timeout=max(0.1, deadline - time.monotonic()))
        # In-flight events: let them finish and be acknowledged.
        drains = [asyncio.ensure_future(source.drain()) for source in self.sources]
        finished = await self.delivery.wait_idle(max(0.1, deadline - time.monotonic()))
        if drains:
            await asyncio.wait(drains, timeout=max(0.1, deadline - time.monotonic()))
        if not finished:
            log.warning(
                "grace period over; unfinished events will be redelivered",
                extra={"inflight": self.delivery.inflight},
            )
        self.delivery.stopping.set()
        for task in [*runs, *drains, *helpers]:
            task.cancel()
        await asyncio.gather(*runs, *drains, *helpers, return_exceptions=True)
        for source in self.sources:
            if isinstance(source, PubSubSource):
                await source.close()
            elif isinstance(source, SqsSource):
                source.close()
        await self.server.stop()
        if self.object_stat is not None:
            with contextlib.suppress(Exception):
                await asyncio.to_thread(self.object_stat.close)
        await self.kube.close()
        log.info("watcher stopped")


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="stereo-watcher",
        description="Turn object-storage notifications into Segment status.completion.",
    )
    parser.add_argument(
        "--config",
        type=Path,
        default=None,
        help="YAML config file (default: $STEREO_WATCHER_CONFIG); "
        "STEREO_WATCHER_* variables override it",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        configure_logging()
        log.error(str(exc))
        return 2
    configure_logging(config.log_level)
    try:
        watcher = Watcher(config)
    except (ConfigError, OSError) as exc:
        log.error(f"cannot start: {exc}")
        return 2
    except Exception as exc:  # kubeconfig loading errors come in many types
        log.error(f"cannot load Kubernetes credentials: {exc}")
        return 2
    code = asyncio.run(watcher.run())
    # Exit now: a pending SQS long poll or the Pub/Sub client's threads would otherwise keep
    # the process alive for up to a long-poll period; their messages are redelivered.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    sys.exit(main())
