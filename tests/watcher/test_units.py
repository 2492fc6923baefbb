"""Pieces of the watcher that need no cluster: the patch body, event filtering, retries
against an API server that does not answer, the spool."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from stereo_operator.watcher.apply import (
    Applier,
    Delivery,
    Outcome,
    Result,
    RetryLater,
    completion_patch,
)
from stereo_operator.watcher.kube import KubeClient
from stereo_operator.watcher.metrics import WatcherMetrics
from stereo_operator.watcher.parsers import Notification
from stereo_operator.watcher.spool import Spool
from stereo_types.events import StorageEvent, StorageEventKind
from stereo_types.layout import StorageRoot, split_uri
from stereo_types.segment import CompletionSource
from tests.servers import free_port

from . import payloads

UID = payloads.UID
OUTPUT = f"s3://films/ws/team-a/film/{UID}/segments/00003/output.mp4"


def event(uri: str = OUTPUT, **fields: object) -> StorageEvent:
    _, bucket, key = split_uri(uri)
    values: dict[str, object] = {
        "kind": StorageEventKind.CREATED,
        "uri": uri,
        "bucket": bucket,
        "key": key,
        "size": 10,
        "event_time": datetime(2026, 11, 25, 18, 0, tzinfo=UTC),
        "source": CompletionSource.SQS,
        **fields,
    }
    return StorageEvent.model_validate(values)


def unreachable() -> KubeClient:
    """An API server address where nothing listens."""
    return KubeClient(f"http://127.0.0.1:{free_port()}", None, lambda: None, timeout=1.0)


def test_completion_patch_replaces_every_field_under_a_resource_version() -> None:
    completion = event(sequencer="0A").to_completion(datetime(2026, 11, 25, 18, 1, tzinfo=UTC))
    patch = completion_patch(completion, "4711")
    assert patch["metadata"] == {"resourceVersion": "4711"}
    fields = patch["status"]["completion"]
    # Fields the event lacks are null, so a merge patch removes what an older report set.
    assert fields["generation"] is None
    assert fields["sequencer"] == "0A"
    assert fields["eventTime"] == "2026-11-25T18:00:00Z"
    assert fields["recordedAt"] == "2026-11-25T18:01:00Z"
    assert set(fields) == {
        "uri",
        "size",
        "etag",
        "generation",
        "sequencer",
        "eventTime",
        "source",
        "recordedAt",
    }


def test_events_outside_the_roots_or_namespaces_need_no_api_call() -> None:
    async def run() -> list[tuple[Outcome, str]]:
        kube = unreachable()  # any request would fail
        applier = Applier(kube, [StorageRoot.parse("s3://films/ws")], namespaces=["team-b"])
        results = [
            await applier.apply(event("s3://films/elsewhere/file.mp4")),
            await applier.apply(event(OUTPUT.replace("output.mp4", "input.mp4"))),
            await applier.apply(event("s3://other-bucket/ws/x.mp4")),
            await applier.apply(event(kind=StorageEventKind.DELETED)),
            await applier.apply(event()),  # team-a is not watched
        ]
        await kube.close()
        return [(r.outcome, r.reason) for r in results]

    assert asyncio.run(run()) == [
        (Outcome.IGNORED, "not-segment-output"),
        (Outcome.IGNORED, "not-segment-output"),
        (Outcome.IGNORED, "not-segment-output"),
        (Outcome.IGNORED, "not-a-creation"),
        (Outcome.IGNORED, "namespace-not-watched"),
    ]


def test_unreachable_api_server_means_retry_later_with_backoff() -> None:
    metrics = WatcherMetrics()

    async def run() -> tuple[float, bool, float | None]:
        kube = unreachable()
        applier = Applier(kube, [StorageRoot.parse("s3://films/ws")])
        delivery = Delivery(
            applier, metrics, max_concurrency=2, initial_backoff=0.05, max_backoff=0.1
        )
        began = time.monotonic()
        with pytest.raises(RetryLater) as raised:
            await delivery.deliver(Notification(events=(event(),)), "sqs", budget=0.5)
        assert raised.value.reason == "api-unavailable"
        elapsed = time.monotonic() - began
        probe = await kube.probe()
        await kube.close()
        return elapsed, probe, kube.last_answer

    elapsed, probe, last_answer = asyncio.run(run())
    assert 0.3 <= elapsed < 3
    assert (probe, last_answer) == (False, None)
    attempts = metrics.errors.labels("sqs", "api-unavailable")._value.get()
    assert attempts >= 3
    assert metrics.errors.labels("sqs", "released-for-redelivery")._value.get() == 1
    assert metrics.received.labels("sqs")._value.get() == 1
    assert metrics.applied.labels("sqs")._value.get() == 0


def test_bounded_concurrency() -> None:
    """No more than max_concurrency events talk to the API server at once."""
    in_flight = 0
    peak = 0

    class SlowApplier(Applier):
        async def apply(self, ev: StorageEvent) -> Result:
            nonlocal in_flight, peak
            in_flight += 1
            peak = max(peak, in_flight)
            await asyncio.sleep(0.02)
            in_flight -= 1
            return await super().apply(ev)  # not a segment output: no API call

    async def run() -> None:
        kube = unreachable()
        applier = SlowApplier(kube, [StorageRoot.parse("s3://films/ws")])
        delivery = Delivery(applier, WatcherMetrics(), max_concurrency=3)
        unrelated = Notification(events=(event("s3://films/x.bin"),))
        await asyncio.gather(*(delivery.deliver(unrelated, "sqs", budget=1) for _ in range(20)))
        await kube.close()

    asyncio.run(run())
    assert peak == 3


def test_spool_keeps_entries_in_order_until_removed(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    first = spool.put("seaweedfs-webhook", b'{"n": 1}')
    second = spool.put("minio-webhook", b'{"n": 2}')
    (tmp_path / "spool" / "half-written.event.tmp").write_bytes(b"{")
    again = Spool(tmp_path / "spool")  # a restarted watcher
    assert not list((tmp_path / "spool").glob("*.tmp"))
    pending = again.pending()
    assert [(e.source, e.body) for e in pending] == [
        ("seaweedfs-webhook", b'{"n": 1}'),
        ("minio-webhook", b'{"n": 2}'),
    ]
    again.remove(first)
    assert [e.path for e in again.pending()] == [second.path]
    assert len(again) == 1
