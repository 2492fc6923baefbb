"""Cloud Storage notifications from a Pub/Sub subscription (streaming pull).

The client library leases each message and extends its ack deadline while it is handled;
the watcher acknowledges only after the status patch succeeded or the event was
deliberately ignored, and nacks it (immediate redelivery) when it must be retried. A watcher
killed mid-way never acknowledges: the lease lapses and Pub/Sub delivers the message again.
Set PUBSUB_EMULATOR_HOST to use the emulator.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from stereo_operator.watcher.apply import Delivery, RetryLater
from stereo_operator.watcher.config import PubSubSubscriptionConfig
from stereo_operator.watcher.metrics import WatcherMetrics
from stereo_operator.watcher.parsers import MalformedEvent, parse_pubsub_message
from stereo_types.segment import CompletionSource

log = logging.getLogger("stereo_operator.watcher.pubsub")
SOURCE = CompletionSource.PUBSUB.value


class PubSubSource:
    kind = SOURCE

    def __init__(
        self,
        config: PubSubSubscriptionConfig,
        delivery: Delivery,
        metrics: WatcherMetrics,
        *,
        retry_budget: float,
        error_backoff: float = 2.0,
    ) -> None:
        self.config = config
        self.name = config.subscription
        self._delivery = delivery
        self._metrics = metrics
        self._budget = retry_budget
        self._error_backoff = error_backoff
        self._stopping = asyncio.Event()
        self._closing = False  # read from the library's threads
        self._loop: asyncio.AbstractEventLoop | None = None
        self._subscriber: Any = None
        self._future: Any = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._connected = False

    @property
    def connected(self) -> bool:
        return self._connected and self._future is not None and self._future.running()

    def _set_connected(self, value: bool) -> None:
        self._connected = value
        self._metrics.source_up.labels(SOURCE, self.name).set(1 if value else 0)

    def stop(self) -> None:
        self._closing = True
        self._stopping.set()

    async def run(self) -> None:
        from google.cloud import pubsub_v1

        self._loop = asyncio.get_running_loop()
        self._subscriber = await self._loop.run_in_executor(None, pubsub_v1.SubscriberClient)
        flow = pubsub_v1.types.FlowControl(
            max_messages=self.config.max_messages,
            max_duration_per_lease_extension=self.config.max_lease_extension_seconds,
        )
        stop_wait = asyncio.ensure_future(self._stopping.wait())
        try:
            while not self._stopping.is_set():
                self._future = self._subscriber.subscribe(
                    self.config.subscription, callback=self._callback, flow_control=flow
                )
                self._set_connected(True)
                pulled = asyncio.wrap_future(self._future)
                await asyncio.wait({pulled, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
                if self._stopping.is_set():
                    break
                self._set_connected(False)
                error = pulled.exception() if not pulled.cancelled() else None
                self._metrics.errors.labels(SOURCE, "pull-failed").inc()
                log.warning(
                    "streaming pull ended; subscribing again",
                    extra={"source": SOURCE, "subscription": self.name, "error": str(error)},
                )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), self._error_backoff)
        finally:
            stop_wait.cancel()

    def _callback(self, message: Any) -> None:
        """Called on the library's threads for each leased message."""
        loop = self._loop
        if self._closing or loop is None:
            message.nack()
            return
        try:
            asyncio.run_coroutine_threadsafe(self._handle(message), loop)
        except RuntimeError:  # the loop is closed
            message.nack()

    async def _handle(self, message: Any) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        if self._closing:
            message.nack()
            return
        try:
            notification = parse_pubsub_message(dict(message.attributes), bytes(message.data))
        except MalformedEvent as exc:
            self._metrics.received.labels(SOURCE).inc()
            self._metrics.errors.labels(SOURCE, "malformed").inc()
            log.error(
                "malformed Pub/Sub message acknowledged",
                extra={
                    "source": SOURCE,
                    "subscription": self.name,
                    "error": str(exc),
                    "message_id": getattr(message, "message_id", None),
                },
            )
            message.ack()
            return
        try:
            await self._delivery.deliver(notification, SOURCE, budget=self._budget)
        except RetryLater:
            message.nack()
            return
        except asyncio.CancelledError:
            message.nack()
            raise
        except Exception:
            log.exception(
                "unexpected error; message left for redelivery",
                extra={"source": SOURCE, "subscription": self.name},
            )
            self._metrics.errors.labels(SOURCE, "internal").inc()
            message.nack()
            return
        message.ack()

    async def drain(self) -> None:
        """Wait for the messages being handled (call after stop())."""
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def close(self) -> None:
        """Stop the streaming pull (acks already queued are sent) and the client."""
        self._set_connected(False)
        loop = asyncio.get_running_loop()
        if self._future is not None:
            future = self._future
            future.cancel()
            with contextlib.suppress(Exception):
                await loop.run_in_executor(None, lambda: future.result(timeout=10))
        if self._subscriber is not None:
            with contextlib.suppress(Exception):
                await loop.run_in_executor(None, self._subscriber.close)
