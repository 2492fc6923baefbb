"""S3 event notifications from an SQS queue: S3's own bodies, SNS envelopes of them, and
S3 events delivered by EventBridge (parsers.parse_s3_notification reads all three).

Long polls ReceiveMessage (boto3, in worker threads), applies each message's records and
deletes the message only once every record was applied or deliberately ignored (or can
never be read: an unreadable record is counted, its message's other records applied). A
message that could not be applied is made visible again after a delay that doubles with each
receive (ApproximateReceiveCount), so an unreachable API server is retried with backoff and
a redrive policy on the queue still sees the failures. A watcher killed mid-way loses
nothing: the message reappears when its visibility timeout ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from stereo_operator.watcher.apply import Delivery, RetryLater
from stereo_operator.watcher.config import SqsQueueConfig
from stereo_operator.watcher.metrics import WatcherMetrics
from stereo_operator.watcher.parsers import MalformedEvent, parse_s3_notification
from stereo_types.segment import CompletionSource

log = logging.getLogger("stereo_operator.watcher.sqs")
SOURCE = CompletionSource.SQS.value


class SqsSource:
    kind = SOURCE

    def __init__(
        self,
        config: SqsQueueConfig,
        delivery: Delivery,
        metrics: WatcherMetrics,
        *,
        retry_budget: float,
        error_backoff: float = 1.0,
    ) -> None:
        self.config = config
        self.name = config.queue_url
        self._delivery = delivery
        self._metrics = metrics
        self._budget = retry_budget
        self._error_backoff = error_backoff
        self._stopping = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._room = asyncio.Event()  # set while fewer than max_inflight messages are handled
        # One thread long-polls; the others delete and change visibility meanwhile.
        self._executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix="sqs")
        self._client: Any = None
        self.connected = False

    def _set_connected(self, value: bool) -> None:
        self.connected = value
        self._metrics.source_up.labels(SOURCE, self.name).set(1 if value else 0)

    async def _call(self, method: str, **kwargs: Any) -> Any:
        loop = asyncio.get_running_loop()
        call = functools.partial(getattr(self._client, method), **kwargs)
        return await loop.run_in_executor(self._executor, call)

    def _make_client(self) -> Any:
        import boto3

        return boto3.client(
            "sqs", region_name=self.config.region, endpoint_url=self.config.endpoint_url
        )

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        self._client = await loop.run_in_executor(self._executor, self._make_client)
        stop_wait = asyncio.ensure_future(self._stopping.wait())
        try:
            # Connected once the queue answers; a long poll on an empty queue takes a while.
            while not self._stopping.is_set():
                try:
                    await self._call(
                        "get_queue_attributes",
                        QueueUrl=self.config.queue_url,
                        AttributeNames=["QueueArn"],
                    )
                    self._set_connected(True)
                    break
                except Exception as exc:
                    self._set_connected(False)
                    self._metrics.errors.labels(SOURCE, "receive-failed").inc()
                    log.warning(
                        "queue not reachable",
                        extra={"source": SOURCE, "queue": self.name, "error": str(exc)},
                    )
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._stopping.wait(), self._error_backoff)
            while not self._stopping.is_set():
                if len(self._tasks) >= self.config.max_inflight:
                    self._room.clear()
                    room = asyncio.ensure_future(self._room.wait())
                    await asyncio.wait({room, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
                    room.cancel()
                    continue
                wanted = min(self.config.max_messages, self.config.max_inflight - len(self._tasks))
                receive = asyncio.ensure_future(
                    self._call(
                        "receive_message",
                        QueueUrl=self.config.queue_url,
                        MaxNumberOfMessages=wanted,
                        WaitTimeSeconds=self.config.wait_time_seconds,
                        VisibilityTimeout=self.config.visibility_timeout_seconds,
                        AttributeNames=["ApproximateReceiveCount"],
                    )
                )
                await asyncio.wait({receive, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
                if not receive.done():
                    # Stopping during a long poll: whatever it brings goes straight back.
                    receive.add_done_callback(self._release_late)
                    break
                try:
                    response = receive.result()
                except Exception as exc:
                    self._set_connected(False)
                    self._metrics.errors.labels(SOURCE, "receive-failed").inc()
                    log.warning(
                        "ReceiveMessage failed",
                        extra={"source": SOURCE, "queue": self.name, "error": str(exc)},
                    )
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._stopping.wait(), self._error_backoff)
                    continue
                self._set_connected(True)
                for message in response.get("Messages", []):
                    task = asyncio.create_task(self._handle(message))
                    self._tasks.add(task)
                    task.add_done_callback(self._finished)
        finally:
            stop_wait.cancel()
            self._set_connected(False)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._room.set()

    def _release_late(self, receive: asyncio.Future[Any]) -> None:
        if receive.cancelled() or receive.exception() is not None:
            return
        messages = receive.result().get("Messages", [])
        if messages:
            entries = [
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": 0}
                for i, m in enumerate(messages)
            ]
            # Fire and forget in the thread pool: the loop may be closing.
            self._executor.submit(
                self._client.change_message_visibility_batch,
                QueueUrl=self.config.queue_url,
                Entries=entries,
            )

    async def _handle(self, message: dict[str, Any]) -> None:
        receipt = message["ReceiptHandle"]
        try:
            notification = parse_s3_notification(message.get("Body", ""), CompletionSource.SQS)
        except MalformedEvent as exc:
            self._metrics.received.labels(SOURCE).inc()
            self._metrics.errors.labels(SOURCE, "malformed").inc()
            log.error(
                "malformed SQS message deleted",
                extra={
                    "source": SOURCE,
                    "queue": self.name,
                    "error": str(exc),
                    "message_id": message.get("MessageId"),
                    "body": str(message.get("Body", ""))[:500],
                },
            )
            await self._delete(receipt)
            return
        try:
            await self._delivery.deliver(notification, SOURCE, budget=self._budget)
        except RetryLater:
            await self._postpone(message)
            return
        except Exception:
            log.exception(
                "unexpected error; message left for redelivery",
                extra={"source": SOURCE, "queue": self.name},
            )
            self._metrics.errors.labels(SOURCE, "internal").inc()
            await self._postpone(message)
            return
        await self._delete(receipt)

    async def _delete(self, receipt: str) -> None:
        try:
            await self._call(
                "delete_message", QueueUrl=self.config.queue_url, ReceiptHandle=receipt
            )
        except Exception as exc:
            # The message comes back; the patch is idempotent, so that is only extra work.
            self._metrics.errors.labels(SOURCE, "delete-failed").inc()
            log.warning(
                "DeleteMessage failed",
                extra={"source": SOURCE, "queue": self.name, "error": str(exc)},
            )

    async def _postpone(self, message: dict[str, Any]) -> None:
        attributes = message.get("Attributes") or {}
        try:
            receives = max(1, int(attributes.get("ApproximateReceiveCount", "1")))
        except ValueError:
            receives = 1
        delay = min(
            self.config.max_retry_delay_seconds,
            self.config.retry_delay_seconds * 2 ** min(receives - 1, 30),
        )
        try:
            await self._call(
                "change_message_visibility",
                QueueUrl=self.config.queue_url,
                ReceiptHandle=message["ReceiptHandle"],
                VisibilityTimeout=max(0, round(delay)),
            )
        except Exception as exc:
            # It reappears when the visibility timeout ends anyway.
            log.warning(
                "ChangeMessageVisibility failed",
                extra={"source": SOURCE, "queue": self.name, "error": str(exc)},
            )

    async def drain(self) -> None:
        """Wait for the messages being handled (call after stop())."""
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=False)
