"""The watcher's one HTTP server: webhook endpoints, health and metrics.

* ``POST /events/minio``: S3 event records as MinIO posts them.
* ``POST /events/seaweedfs``: SeaweedFS filer webhook notifications.

Both need ``Authorization: Bearer <token>`` (401 otherwise, nothing changes). A body that is
not a notification gets 400 with the reason. An event that cannot be applied because the API
server is unreachable gets 503 with Retry-After so the sender retries (MinIO keeps a queue)
or, with a spool directory configured, is kept on disk, retried by the watcher and answered
202 (SeaweedFS 4.48 never retries a failed post: see spool.py). 200 answers carry counts.

* ``POST /events/pubsub``: a Pub/Sub push subscription's requests (Cloud Storage
  notifications). Authenticated by the same bearer token (header, or ``?token=`` in the push
  endpoint URL, since Pub/Sub sets no header of one's choosing) or by the OIDC token Pub/Sub
  signs for the subscription (oidc.py). Pub/Sub redelivers whatever is not answered 2xx, so
  the answer is 200 only once the completion was applied or deliberately ignored, 503 when
  it must come again, and 200 (counted as malformed) for a message that can never be read,
  as the pull source acknowledges one.

* ``GET /healthz``: the process serves requests.
* ``GET /readyz``: the API server answered recently, every source is connected and the
  watcher is not shutting down; 503 with the failing checks otherwise.
* ``GET /metrics``: Prometheus text format.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import os
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from aiohttp import web

from stereo_operator.watcher.apply import Delivery, RetryLater
from stereo_operator.watcher.config import WebhookConfig
from stereo_operator.watcher.metrics import WatcherMetrics
from stereo_operator.watcher.oidc import (
    CertsUnavailable,
    InvalidToken,
    OidcVerifier,
    looks_like_jwt,
)
from stereo_operator.watcher.parsers import (
    MalformedEvent,
    Notification,
    parse_pubsub_message,
    parse_s3_notification,
    parse_seaweedfs_event,
    read_pubsub_push,
)
from stereo_operator.watcher.spool import Spool, SpoolEntry
from stereo_types.segment import CompletionSource

# What a body parser makes of a request body.
_Parsed = TypeVar("_Parsed")

log = logging.getLogger("stereo_operator.watcher.http")

MINIO = CompletionSource.MINIO_WEBHOOK.value
SEAWEEDFS = CompletionSource.SEAWEEDFS_WEBHOOK.value
PUBSUB_PUSH = "pubsub-push"  # metric label; the completions say source: pubsub


class TokenStore:
    """The accepted bearer tokens: lines of a file (re-read when it changes) or one env var."""

    def __init__(self, token_file: Path | None, token_env: str) -> None:
        self._file = token_file
        self._env = token_env
        self._stamp: tuple[float, int] | None = None
        self._checked = 0.0
        self._tokens: list[bytes] = []
        self._load(force=True)

    def _load(self, force: bool = False) -> None:
        if self._file is None:
            value = os.environ.get(self._env, "").strip()
            self._tokens = [value.encode()] if value else []
            return
        now = time.monotonic()
        if not force and now - self._checked < 1.0:
            return
        self._checked = now
        try:
            stat = self._file.stat()
            stamp = (stat.st_mtime, stat.st_size)
            if force or stamp != self._stamp:
                lines = self._file.read_text().splitlines()
                self._tokens = [line.strip().encode() for line in lines if line.strip()]
                self._stamp = stamp
        except OSError as exc:
            if force:
                raise
            log.warning(
                "cannot re-read the webhook token file; keeping the old tokens",
                extra={"path": str(self._file), "error": str(exc)},
            )

    @property
    def configured(self) -> bool:
        return bool(self._tokens)

    def check(self, header: str | None) -> bool:
        """Whether an Authorization header carries an accepted token (constant time)."""
        self._load()
        if not header or not self._tokens:
            return False
        scheme, _, presented = header.strip().partition(" ")
        if scheme.lower() != "bearer":
            return False
        candidate = presented.strip().encode()
        ok = False
        for token in self._tokens:  # no early exit: time does not depend on which matched
            ok |= hmac.compare_digest(candidate, token)
        return ok


def _json(status: int, body: dict[str, Any], **headers: str) -> web.Response:
    return web.json_response(body, status=status, headers=headers or None)


class HttpServer:
    def __init__(
        self,
        config: WebhookConfig,
        delivery: Delivery | None,
        metrics: WatcherMetrics,
        tokens: TokenStore | None,
        readiness: Callable[[], tuple[bool, dict[str, Any]]],
        spool: Spool | None = None,
        api_reachable: Callable[[], bool] = lambda: True,
        oidc: OidcVerifier | None = None,
    ) -> None:
        self._config = config
        self._delivery = delivery
        self._metrics = metrics
        self._tokens = tokens
        self._readiness = readiness
        self._spool = spool
        self._api_reachable = api_reachable
        self._oidc = oidc
        self._parsers: dict[str, Callable[[bytes], Notification]] = {}
        self._in_progress: set[Path] = set()
        self._spooled = asyncio.Event()
        self.draining = False
        self.app = web.Application(client_max_size=config.max_body_bytes)
        self.app.router.add_get("/healthz", self._healthz)
        self.app.router.add_get("/readyz", self._readyz)
        self.app.router.add_get("/metrics", self._metrics_page)
        self._spooled_sources = {
            {"minio": MINIO, "seaweedfs": SEAWEEDFS}[name] for name in config.spool_endpoints
        }
        if config.minio:
            self._route(
                "/events/minio",
                MINIO,
                partial(parse_s3_notification, source=CompletionSource.MINIO_WEBHOOK),
            )
        if config.seaweedfs:
            buckets_dir = config.seaweedfs_buckets_dir
            self._route(
                "/events/seaweedfs",
                SEAWEEDFS,
                lambda body: parse_seaweedfs_event(body, buckets_dir),
            )
        if config.pubsub:
            self.app.router.add_post("/events/pubsub", self._pubsub_push)
            self.app.router.add_route("HEAD", "/events/pubsub", self._head)
        self._runner: web.AppRunner | None = None
        self.port: int | None = None

    def _route(self, path: str, source: str, parser: Callable[[bytes], Notification]) -> None:
        self._parsers[source] = parser
        handler = partial(self._events, source=source, parser=parser)
        self.app.router.add_post(path, handler)
        # Some senders probe the endpoint before posting: answer without side effects.
        self.app.router.add_route("HEAD", path, self._head)

    async def start(self, host: str, port: int) -> None:
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port, shutdown_timeout=5.0)
        await site.start()
        server = getattr(site, "_server", None)
        sockets = getattr(server, "sockets", None) or []
        self.port = sockets[0].getsockname()[1] if sockets else port

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _healthz(self, request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def _readyz(self, request: web.Request) -> web.Response:
        ready, checks = self._readiness()
        return _json(200 if ready else 503, {"ready": ready, "checks": checks})

    async def _metrics_page(self, request: web.Request) -> web.Response:
        return web.Response(
            body=self._metrics.render(), headers={"Content-Type": self._metrics.content_type}
        )

    async def _head(self, request: web.Request) -> web.Response:
        return web.Response(status=200)

    async def _events(
        self,
        request: web.Request,
        *,
        source: str,
        parser: Callable[[bytes], Notification],
    ) -> web.Response:
        if self._tokens is None or not self._tokens.check(request.headers.get("Authorization")):
            return self._unauthorized(request, source, "no valid bearer token")
        if self.draining or self._delivery is None:
            return _json(503, {"error": "shutting down; retry"}, **{"Retry-After": "5"})
        read = await self._read_body(request, source, parser, "webhook")
        if isinstance(read, web.Response):
            return read
        body, notification = read
        entry = await self._spool_put(source, body) if notification.events else None
        if entry is not None and not self._api_reachable():
            # Known outage: do not hold the sender for a request timeout; the replay task
            # applies it once the API server answers again.
            self._metrics.received.labels(source).inc(notification.records)
            self._metrics.errors.labels(source, "api-unavailable").inc()
            return self._queued(entry, "api-unavailable")
        try:
            report = await self._delivery.deliver(
                notification, source, budget=self._config.retry_budget_seconds
            )
        except RetryLater as exc:
            if entry is not None:
                return self._queued(entry, exc.reason)
            return _json(
                503, {"error": f"cannot apply now ({exc.reason}); retry"}, **{"Retry-After": "2"}
            )
        except Exception:
            log.exception("unexpected error applying a webhook event", extra={"source": source})
            self._metrics.errors.labels(source, "internal").inc()
            if entry is not None:
                return self._queued(entry, "internal")
            return _json(500, {"error": "internal error"})
        if entry is not None and self._spool is not None:
            await asyncio.to_thread(self._spool.remove, entry)
            self._in_progress.discard(entry.path)
        summary = report.summary(ignored_records=len(notification.ignored))
        if notification.malformed:
            summary["malformed"] = len(notification.malformed)
        return _json(200, {"received": notification.records, **summary})

    async def _read_body(
        self, request: web.Request, source: str, parse: Callable[[bytes], _Parsed], kind: str
    ) -> tuple[bytes, _Parsed] | web.Response:
        """The request's body and what ``parse`` makes of it, or the answer that refuses it
        (too large, malformed)."""
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            self._metrics.errors.labels(source, "malformed").inc()
            return _json(413, {"error": f"body larger than {self._config.max_body_bytes} bytes"})
        try:
            return body, parse(body)
        except MalformedEvent as exc:
            self._metrics.received.labels(source).inc()
            self._metrics.errors.labels(source, "malformed").inc()
            log.warning(
                f"malformed {kind} body",
                extra={
                    "source": source,
                    "error": str(exc),
                    "body": body[:300].decode("utf-8", "replace"),
                },
            )
            return _json(400, {"error": f"malformed body: {exc}"})

    def _unauthorized(self, request: web.Request, source: str, why: str) -> web.Response:
        self._metrics.errors.labels(source, "unauthorized").inc()
        log.warning(
            "webhook request refused: not authenticated",
            extra={"source": source, "remote": request.remote, "error": why},
        )
        return _json(
            401,
            {"error": "unauthorized: a valid bearer token is required"},
            **{"WWW-Authenticate": 'Bearer realm="stereo-watcher"'},
        )

    # --- Pub/Sub push ----------------------------------------------------------------------

    async def _push_refusal(self, request: web.Request) -> str | None:
        """Why a push request is not authenticated, or None if it is. Raises
        CertsUnavailable when an OIDC token cannot be checked now."""
        header = request.headers.get("Authorization")
        if self._tokens is not None and self._tokens.configured:
            if self._tokens.check(header):
                return None
            query = request.query.get("token")
            if query and self._tokens.check(f"Bearer {query}"):
                return None
        scheme, _, credential = (header or "").strip().partition(" ")
        credential = credential.strip()
        if self._oidc is None:
            return "no valid bearer token"
        if scheme.lower() != "bearer" or not looks_like_jwt(credential):
            return "no valid bearer token and no OIDC token"
        try:
            await asyncio.to_thread(self._oidc.verify, credential)
        except InvalidToken as exc:
            return f"OIDC token refused: {exc}"
        return None

    async def _pubsub_push(self, request: web.Request) -> web.Response:
        source = PUBSUB_PUSH
        try:
            refusal = await self._push_refusal(request)
        except CertsUnavailable as exc:
            self._metrics.errors.labels(source, "oidc-keys-unavailable").inc()
            log.warning("cannot check a push request's OIDC token", extra={"error": str(exc)})
            return _json(
                503, {"error": "cannot check the token now; retry"}, **{"Retry-After": "5"}
            )
        if refusal is not None:
            return self._unauthorized(request, source, refusal)
        if self.draining or self._delivery is None:
            return _json(503, {"error": "shutting down; retry"}, **{"Retry-After": "5"})
        read = await self._read_body(request, source, read_pubsub_push, "push")
        if isinstance(read, web.Response):
            return read
        _, push = read
        where = {"subscription": push.subscription, "message_id": push.message_id}
        try:
            notification = parse_pubsub_message(push.attributes, push.data)
        except MalformedEvent as exc:
            # Pub/Sub would redeliver it for as long as it keeps messages: acknowledge it.
            self._metrics.received.labels(source).inc()
            self._metrics.errors.labels(source, "malformed").inc()
            log.error(
                "malformed Pub/Sub message acknowledged",
                extra={"source": source, "error": str(exc), **where},
            )
            return _json(200, {"received": 1, "malformed": 1})
        try:
            report = await self._delivery.deliver(
                notification, source, budget=self._config.retry_budget_seconds
            )
        except RetryLater as exc:
            return _json(
                503, {"error": f"cannot apply now ({exc.reason}); retry"}, **{"Retry-After": "2"}
            )
        except Exception:
            log.exception("unexpected error applying a push message", extra=where)
            self._metrics.errors.labels(source, "internal").inc()
            return _json(500, {"error": "internal error"})
        summary = report.summary(ignored_records=len(notification.ignored))
        return _json(200, {"received": notification.records, **summary})

    def _queued(self, entry: SpoolEntry, reason: str) -> web.Response:
        """The event stays in the spool; the replay task owns it from now on."""
        self._in_progress.discard(entry.path)
        self._spooled.set()
        return _json(202, {"queued": True, "reason": reason})

    # --- the spool -------------------------------------------------------------------------

    async def _spool_put(self, source: str, body: bytes) -> SpoolEntry | None:
        if self._spool is None or source not in self._spooled_sources:
            return None
        try:
            entry = await asyncio.to_thread(self._spool.put, source, body)
        except OSError as exc:
            self._metrics.errors.labels(source, "spool-write-failed").inc()
            log.error(
                "cannot spool a webhook event; applying it without a spool",
                extra={"source": source, "error": str(exc)},
            )
            return None
        self._in_progress.add(entry.path)
        return entry

    async def replay_spool(self, stopping: asyncio.Event, initial: float, maximum: float) -> None:
        """Apply spooled events (left by a failed request or a killed watcher) until stopping."""
        if self._spool is None or self._delivery is None:
            return
        spool, delivery = self._spool, self._delivery
        backoff = initial
        while not stopping.is_set():
            entries = await asyncio.to_thread(spool.pending)
            self._metrics.spooled.set(len(entries))
            blocked = False
            for entry in entries:
                if stopping.is_set() or entry.path in self._in_progress:
                    continue
                parser = self._parsers.get(entry.source)
                try:
                    if parser is None:
                        raise MalformedEvent(f"no endpoint for source {entry.source!r}")
                    notification = parser(entry.body)
                except MalformedEvent as exc:
                    log.error(
                        "dropping an unreadable spool entry",
                        extra={"path": str(entry.path), "error": str(exc)},
                    )
                    await asyncio.to_thread(spool.remove, entry)
                    continue
                self._in_progress.add(entry.path)
                try:
                    await delivery.deliver(notification, entry.source, budget=0, replay=True)
                except RetryLater as exc:
                    blocked = True
                    if exc.reason == "segment-pending":
                        continue  # this one waits for its Segment; the others need not
                    break  # the API server is away: wait, then go on
                except Exception:
                    log.exception("unexpected error replaying a spooled event")
                    blocked = True
                    break
                finally:
                    self._in_progress.discard(entry.path)
                await asyncio.to_thread(spool.remove, entry)
            backoff = min(backoff * 2, maximum) if blocked else initial
            self._spooled.clear()
            with contextlib.suppress(TimeoutError):
                wait = backoff if blocked else max(maximum, 1.0)
                await asyncio.wait_for(self._wait_spooled_or(stopping, blocked), wait)

    async def _wait_spooled_or(self, stopping: asyncio.Event, blocked: bool) -> None:
        waiters = [asyncio.ensure_future(stopping.wait())]
        if not blocked:
            waiters.append(asyncio.ensure_future(self._spooled.wait()))
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
