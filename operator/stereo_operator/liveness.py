"""Liveness that fails when the operator's watch streams go silent.

kopf's own liveness endpoint answers as long as the event loop runs, even when no watch
delivers anything any more (a stream stuck behind a proxy, a watch that cannot reconnect).
So the operator serves /healthz itself, renews a heartbeat Lease every `heartbeatSeconds`
and watches that Lease through kopf's streams like any other object; /healthz answers 503
(saying why) once a renewal that the API server accepted has not come back through the
watch within `timeoutSeconds`.

What does not fail it: an idle cluster (the heartbeat is the traffic), an API server that
refuses the renewals (then nothing is owed: restarting would not bring it back), and a
replica that kopf paused because a peer with a higher priority is active (a standby
replica's streams are paused on purpose).
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import socket
import time
import urllib.parse
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import kopf
from aiohttp import web

from stereo_operator.config import LivenessConfig
from stereo_operator.kube import Kube
from stereo_operator.views import parse_time

log = logging.getLogger(__name__)

LEASE_GROUP, LEASE_VERSION, LEASE_PLURAL = "coordination.k8s.io", "v1", "leases"
# Renewals awaiting their watch event: past this many only the oldest are kept (they are
# what the wait is measured from; a later event clears every renewal before it anyway).
_MAX_PENDING = 4096


class Heartbeat:
    """Renewals sent and renewals seen; touched on the event loop only."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._pending: deque[tuple[datetime, float]] = deque()
        self._seen: datetime | None = None

    def sent(self, stamp: datetime) -> None:
        """The API server accepted a renewal to `stamp`."""
        fresh = self._seen is None or stamp > self._seen  # its event may have come first
        if fresh and len(self._pending) < _MAX_PENDING:
            self._pending.append((stamp, self._clock()))

    def seen(self, stamp: datetime) -> None:
        """The watch delivered the Lease renewed to `stamp` (and so every earlier renewal)."""
        if self._seen is None or stamp > self._seen:
            self._seen = stamp
        while self._pending and self._pending[0][0] <= stamp:
            self._pending.popleft()

    def waiting(self) -> float:
        """Seconds the oldest renewal not yet seen has been waiting (0: none)."""
        return self._clock() - self._pending[0][1] if self._pending else 0.0

    def report(self) -> dict[str, Any]:
        return {
            "lastSeenRenewal": self._seen.isoformat() if self._seen else None,
            "waitingSeconds": round(self.waiting(), 1),
        }


def higher_priority_peers(status: Mapping[str, Any], priority: int, now: datetime) -> list[str]:
    """The live peers in a kopf peering object's status that kopf pauses this operator for
    (kopf's rule: an operator yields to any live peer of a higher priority)."""
    peers = []
    for identity, info in status.items():
        if not isinstance(info, Mapping):
            continue
        try:
            peer_priority = int(info.get("priority", 0))
            lifetime = timedelta(seconds=int(info.get("lifetime", 60)))
            lastseen = parse_time(info.get("lastseen"))
        except (TypeError, ValueError):
            continue
        if lastseen is not None and lastseen + lifetime > now and peer_priority > priority:
            peers.append(str(identity))
    return sorted(peers)


@dataclass(frozen=True, slots=True)
class Peering:
    """Where kopf keeps this operator's peers, and its own priority among them."""

    name: str
    namespace: str | None
    priority: int


@dataclass(frozen=True, slots=True)
class Target:
    """The heartbeat Lease."""

    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"

    def field_selector(self) -> str:
        return f"metadata.name={self.name},metadata.namespace={self.namespace}"


def watch_only(settings: kopf.OperatorSettings, target: Target) -> None:
    """Server-side filtering: of all Leases, the operator's watch sees its heartbeat only."""
    settings.watching.field_selectors[LEASE_GROUP, LEASE_PLURAL] = target.field_selector()


async def _renew_forever(
    kube: Kube, beat: Heartbeat, target: Target, config: LivenessConfig
) -> None:
    holder = os.environ.get("POD_ID") or socket.gethostname()
    duration = math.ceil(config.timeout_seconds)
    failing = False
    while True:
        stamp = datetime.now(UTC)
        try:
            await asyncio.to_thread(
                kube.renew_lease, target.namespace, target.name, holder, stamp, duration
            )
        except Exception as exc:  # the API server is away: nothing is owed, log it once
            if not failing:
                log.warning("cannot renew the heartbeat Lease %s: %s", target, exc)
            failing = True
        else:
            beat.sent(stamp)
            if failing:
                log.info("renewing the heartbeat Lease %s again", target)
            failing = False
        await asyncio.sleep(config.heartbeat_seconds)


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where /healthz is served, from a URL such as http://0.0.0.0:8080/healthz."""

    host: str
    port: int
    path: str

    @classmethod
    def parse(cls, url: str) -> Endpoint:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme != "http" or not parts.port:
            raise ValueError(f"the liveness endpoint must be http://HOST:PORT/PATH, got {url!r}")
        return cls(parts.hostname or "0.0.0.0", parts.port, parts.path or "/healthz")


def register(
    registry: kopf.OperatorRegistry,
    kube: Kube,
    config: LivenessConfig,
    endpoint: Endpoint,
    target: Target,
    peering: Peering | None,
) -> Heartbeat:
    """The heartbeat's renewer, its watch, and the endpoint that judges it: 200 with what
    it saw, or 503 with why, as JSON."""
    beat = Heartbeat()
    running: list[asyncio.Task[None]] = []
    servers: list[web.AppRunner] = []
    failing = False

    async def verdict() -> tuple[int, dict[str, Any]]:
        nonlocal failing
        report = beat.report()
        waited = beat.waiting()
        if waited > config.timeout_seconds and peering is not None:
            peers = await asyncio.to_thread(_standing_by_for, kube, peering)
            if peers:
                return 200, {**report, "standingByFor": peers}
        if waited <= config.timeout_seconds:
            if failing:
                log.info("the watch delivers the heartbeat Lease again")
            failing = False
            return 200, report
        error = (
            f"the watch has not delivered the heartbeat Lease {target} "
            f"renewed {waited:.0f}s ago (liveness.timeoutSeconds={config.timeout_seconds:g}): "
            "the operator's watch streams have gone silent"
        )
        if not failing:
            log.error("liveness fails: %s", error)
        failing = True
        return 503, {**report, "error": error}

    async def healthz(_: web.Request) -> web.Response:
        status, body = await verdict()
        return web.json_response(body, status=status)

    @kopf.on.startup(id="liveness_start", registry=registry)
    async def start(**_: Any) -> None:
        app = web.Application()
        app.router.add_get(endpoint.path, healthz)
        runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, endpoint.host, endpoint.port).start()
        servers.append(runner)
        running.append(asyncio.create_task(_renew_forever(kube, beat, target, config)))

    @kopf.on.cleanup(id="liveness_stop", registry=registry)
    async def stop(**_: Any) -> None:
        for task in running:
            task.cancel()
        for runner in servers:
            await runner.cleanup()

    @kopf.on.event(LEASE_GROUP, LEASE_VERSION, LEASE_PLURAL, id="heartbeat", registry=registry)
    async def delivered(body: kopf.Body, **_: Any) -> None:
        meta = body.get("metadata") or {}
        if (meta.get("namespace"), meta.get("name")) != (target.namespace, target.name):
            return
        stamp = parse_time((body.get("spec") or {}).get("renewTime"))
        if stamp is not None:
            beat.seen(stamp)

    return beat


def _standing_by_for(kube: Kube, peering: Peering) -> list[str]:
    try:
        status = kube.peering_status(peering.name, peering.namespace)
    except Exception as exc:
        log.warning("cannot read the peering object %s: %s", peering.name, exc)
        return []
    return higher_priority_peers(status, peering.priority, datetime.now(UTC))
