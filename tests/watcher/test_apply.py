"""The Applier in-process against the real API server: least privilege, optimistic locking
between concurrent watchers, whole-completion replacement, Segments that do not exist."""

from __future__ import annotations

import asyncio
import logging
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config

from stereo_operator.watcher.apply import Applier, Outcome, Result, RetryLater
from stereo_operator.watcher.kube import ApiConflict, KubeClient
from stereo_operator.watcher.objects import ObjectFacts, StatDenied, StatUnavailable
from stereo_operator.watcher.parsers import UnsizedEvent
from stereo_types.events import StorageEvent, StorageEventKind
from stereo_types.layout import StorageRoot, split_uri
from stereo_types.names import GROUP, SEGMENT_PLURAL, VERSION, VIDEOJOB_PLURAL
from stereo_types.segment import CompletionSource

from .harness import (
    completion,
    create_segment,
    create_videojob,
    delete_videojob,
    output_uri,
)

pytestmark = pytest.mark.cluster

ROOT = "s3://films/ws"
T0 = datetime(2026, 11, 25, 18, 0, tzinfo=UTC)


def _event(uri: str, **fields: Any) -> StorageEvent:
    _, bucket, key = split_uri(uri)
    values: dict[str, Any] = {
        "kind": StorageEventKind.CREATED,
        "uri": uri,
        "bucket": bucket,
        "key": key,
        "size": 100,
        "etag": "abc",
        "event_time": T0,
        "source": CompletionSource.SQS,
    }
    values.update(fields)
    return StorageEvent.model_validate(values)


def _segment(api: client.ApiClient, namespace: str, videojob: str = "film") -> tuple[str, str]:
    uid = create_videojob(api, namespace, videojob)
    uri = output_uri(ROOT, namespace, videojob, uid, 0)
    return create_segment(api, namespace, videojob, uid, 0, uri), uri


def _applier(kubeconfig: Path, **kwargs: Any) -> Applier:
    kube = KubeClient.from_kubeconfig(kubeconfig, timeout=10)
    return Applier(kube, [StorageRoot.parse(ROOT)], **kwargs)


def _set_completion(api: client.ApiClient, namespace: str, name: str, **fields: Any) -> None:
    body = {
        "status": {
            "completion": {
                "size": 1,
                "eventTime": "2026-11-25T18:00:00Z",
                "source": "reconcile",
                "recordedAt": "2026-11-25T18:00:00Z",
                **fields,
            }
        }
    }
    client.CustomObjectsApi(api).patch_namespaced_custom_object_status(
        GROUP, VERSION, namespace, SEGMENT_PLURAL, name, body
    )


def _status(error: client.ApiException | None) -> int | None:
    return None if error is None else int(error.status)


def _try(call: Any, *args: Any, **kwargs: Any) -> int:
    try:
        call(*args, **kwargs)
    except client.ApiException as exc:
        return int(exc.status)
    return 200


def _can(api: client.ApiClient, verb: str, resource: str, namespace: str) -> bool:
    review = client.AuthorizationV1Api(api).create_self_subject_access_review(
        {
            "spec": {
                "resourceAttributes": {
                    "group": GROUP,
                    "resource": resource,
                    "verb": verb,
                    "namespace": namespace,
                }
            }
        }
    )
    return bool(review.status.allowed)


def test_rbac_grants_the_watcher_only_what_it_needs(
    watcher_identity: Path, api: client.ApiClient, namespace: str
) -> None:
    name, _ = _segment(api, namespace)
    watcher = config.new_client_from_config(config_file=str(watcher_identity))
    co, core = client.CustomObjectsApi(watcher), client.CoreV1Api(watcher)
    args = (GROUP, VERSION, namespace)
    allowed = {
        "get segment": _try(co.get_namespaced_custom_object, *args, SEGMENT_PLURAL, name),
        "patch segment status": _try(
            co.patch_namespaced_custom_object_status,
            *args,
            SEGMENT_PLURAL,
            name,
            {"status": {"attempts": 0}},
        ),
        "get videojob": _try(co.get_namespaced_custom_object, *args, VIDEOJOB_PLURAL, "film"),
        "list videojobs": _try(co.list_namespaced_custom_object, *args, VIDEOJOB_PLURAL),
        "watch videojobs": 200 if _can(watcher, "watch", VIDEOJOB_PLURAL, namespace) else 403,
    }
    assert set(allowed.values()) == {200}, allowed
    segment = co.get_namespaced_custom_object(*args, SEGMENT_PLURAL, name)
    denied = {
        "list segments": _try(co.list_namespaced_custom_object, *args, SEGMENT_PLURAL),
        "patch segment": _try(
            co.patch_namespaced_custom_object,
            *args,
            SEGMENT_PLURAL,
            name,
            {"metadata": {"labels": {"x": "y"}}},
        ),
        "update segment status": _try(
            co.replace_namespaced_custom_object_status, *args, SEGMENT_PLURAL, name, segment
        ),
        "delete segment": _try(co.delete_namespaced_custom_object, *args, SEGMENT_PLURAL, name),
        "create segment": _try(
            co.create_namespaced_custom_object,
            *args,
            SEGMENT_PLURAL,
            {**segment, "metadata": {"name": "other-00000"}},
        ),
        "patch videojob": _try(
            co.patch_namespaced_custom_object,
            *args,
            VIDEOJOB_PLURAL,
            "film",
            {"metadata": {"labels": {"x": "y"}}},
        ),
        "delete videojob": _try(co.delete_namespaced_custom_object, *args, VIDEOJOB_PLURAL, "film"),
        "list secrets": _try(core.list_namespaced_secret, namespace),
        "list pods": _try(core.list_namespaced_pod, namespace),
        "create configmap": _try(
            core.create_namespaced_config_map, namespace, {"metadata": {"name": "x"}}
        ),
    }
    assert set(denied.values()) == {403}, denied


def test_concurrent_watchers_never_regress_a_newer_completion(
    watcher_identity: Path, api: client.ApiClient, namespace: str
) -> None:
    name, uri = _segment(api, namespace)
    events = [_event(uri, sequencer=f"{n:04X}", size=n) for n in range(1, 41)]
    random.Random(4).shuffle(events)

    async def run() -> list[Result]:
        # Two replicas: separate clients, no shared per-segment lock, so they conflict.
        first, second = _applier(watcher_identity), _applier(watcher_identity)
        try:
            return list(
                await asyncio.gather(
                    *((first if i % 2 else second).apply(e) for i, e in enumerate(events))
                )
            )
        finally:
            await first._kube.close()
            await second._kube.close()

    results = asyncio.run(run())
    final = completion(api, namespace, name)
    assert final is not None
    assert (final["sequencer"], final["size"]) == ("0028", 40)
    outcomes = {r.outcome for r in results}
    assert Outcome.APPLIED in outcomes
    assert outcomes <= {Outcome.APPLIED, Outcome.IGNORED}


def test_a_conflict_makes_the_applier_decide_again_on_the_fresh_object(
    watcher_identity: Path, api: client.ApiClient, namespace: str
) -> None:
    name, uri = _segment(api, namespace)
    conflicts: list[ApiConflict] = []

    class Racing(KubeClient):
        """Another writer records a newer completion between our read and our patch."""

        raced = False

        async def get(self, path: str) -> dict[str, Any] | None:
            segment = await super().get(path)
            if not self.raced and path.endswith(f"/segments/{name}"):
                self.raced = True
                await asyncio.to_thread(
                    _set_completion, api, namespace, name, uri=uri, sequencer="FF", size=2
                )
            return segment

        async def merge_patch(self, path: str, patch: dict[str, Any]) -> dict[str, Any]:
            try:
                return await super().merge_patch(path, patch)
            except ApiConflict as exc:
                conflicts.append(exc)
                raise

    async def run() -> Result:
        base = KubeClient.from_kubeconfig(watcher_identity, timeout=10)
        kube = Racing(base.host, base._ssl or None, base._authorization, 10)  # type: ignore[arg-type]
        applier = Applier(kube, [StorageRoot.parse(ROOT)])
        try:
            return await applier.apply(_event(uri, sequencer="10", size=1))
        finally:
            await kube.close()

    result = asyncio.run(run())
    assert len(conflicts) == 1 and conflicts[0].status == 409
    assert (result.outcome, result.reason) == (Outcome.IGNORED, "older-than-recorded")
    final = completion(api, namespace, name)
    assert final is not None and (final["sequencer"], final["size"]) == ("FF", 2)


def test_a_newer_report_replaces_the_whole_completion(
    watcher_identity: Path, api: client.ApiClient, namespace: str
) -> None:
    name, uri = _segment(api, namespace)
    _set_completion(api, namespace, name, uri=uri, sequencer="AA", etag="old", size=1)
    later = _event(uri, etag="new", size=5, event_time=T0 + timedelta(seconds=1))

    async def run() -> Result:
        applier = _applier(watcher_identity)
        try:
            return await applier.apply(later)
        finally:
            await applier._kube.close()

    assert asyncio.run(run()).outcome is Outcome.APPLIED
    final = completion(api, namespace, name)
    assert final is not None
    assert (final["etag"], final["size"], final["source"]) == ("new", 5, "sqs")
    assert "sequencer" not in final  # not kept over from the older report


def test_segments_that_do_not_exist(
    watcher_identity: Path, api: client.ApiClient, namespace: str
) -> None:
    uid = create_videojob(api, namespace, "film")
    pending = output_uri(ROOT, namespace, "film", uid, 4)  # the VideoJob lives, no Segment 4
    ghost = output_uri(ROOT, namespace, "ghost", "7f9c3c1e-0000-4000-8000-000000000000", 0)
    now = datetime.now(UTC)

    async def run() -> dict[str, Any]:
        applier = _applier(watcher_identity, pending_segment_grace=30)
        out: dict[str, Any] = {}
        try:
            out["ghost"] = await applier.apply(_event(ghost, event_time=now))
            try:
                await applier.apply(_event(pending, event_time=now))
            except RetryLater as exc:
                out["young"] = exc.reason
            out["old"] = await applier.apply(_event(pending, event_time=now - timedelta(minutes=5)))
            await asyncio.to_thread(delete_videojob, api, namespace, "film")
            await asyncio.to_thread(create_videojob, api, namespace, "film")  # a new UID
            out["recreated"] = await applier.apply(_event(pending, event_time=now))
        finally:
            await applier._kube.close()
        return out

    out = asyncio.run(run())
    assert (out["ghost"].outcome, out["ghost"].reason) == (Outcome.IGNORED, "segment-not-found")
    assert out["young"] == "segment-pending"
    assert (out["old"].outcome, out["old"].reason) == (Outcome.IGNORED, "segment-not-found")
    assert (out["recreated"].outcome, out["recreated"].reason) == (
        Outcome.IGNORED,
        "segment-not-found",
    )


def test_sequencers_of_different_lengths_compare_padded_on_the_right(
    watcher_identity: Path, api: client.ApiClient, namespace: str
) -> None:
    """A newer overwrite whose sequencer is shorter replaces the completion; padding on the
    left would have called it older and kept the stale one."""
    name, uri = _segment(api, namespace)
    first = _event(uri, sequencer="0066B2D4E1A8F3C7D2FF", size=100)
    overwrite = _event(uri, sequencer="0066B2D4E1A8F3C7D3", size=200)

    async def run() -> list[tuple[Outcome, str]]:
        applier = _applier(watcher_identity)
        try:
            return [
                (r.outcome, r.reason)
                for r in [
                    await applier.apply(first),
                    await applier.apply(overwrite),
                    await applier.apply(first),  # a late redelivery of the first write
                ]
            ]
        finally:
            await applier._kube.close()

    assert asyncio.run(run()) == [
        (Outcome.APPLIED, ""),
        (Outcome.APPLIED, ""),
        (Outcome.IGNORED, "older-than-recorded"),
    ]
    final = completion(api, namespace, name)
    assert final is not None
    assert (final["sequencer"], final["size"]) == ("0066B2D4E1A8F3C7D3", 200)


class _Storage:
    """An ObjectStat answering from a table (the real one, against fake-gcs-server, is
    exercised in test_formats.py); counts the reads."""

    def __init__(self, answers: dict[int, Any]) -> None:
        self.answers = answers
        self.reads: list[int] = []

    async def stat(self, bucket: str, key: str, generation: int) -> ObjectFacts | None:
        self.reads.append(generation)
        answer = self.answers.get(generation)
        if isinstance(answer, Exception):
            raise answer
        return answer  # type: ignore[no-any-return]

    def close(self) -> None:
        pass


def _unsized(uri: str, generation: int) -> UnsizedEvent:
    _, bucket, key = split_uri(uri)
    return UnsizedEvent(
        kind=StorageEventKind.CREATED,
        uri=uri,
        bucket=bucket,
        key=key,
        generation=generation,
        event_time=T0,
        source=CompletionSource.PUBSUB,
    )


def test_notifications_without_payload_read_the_size_only_when_it_matters(
    watcher_identity: Path, api: client.ApiClient, namespace: str, caplog: pytest.LogCaptureFixture
) -> None:
    uid = create_videojob(api, namespace, "film")
    uri = output_uri("gs://films/ws", namespace, "film", uid, 0)
    name = create_segment(api, namespace, "film", uid, 0, uri)
    created = T0 + timedelta(microseconds=123456)
    storage = _Storage(
        {
            5: ObjectFacts(size=4321, etag="CJvN", created=created),
            7: StatDenied("403 caller does not have storage.objects.get access"),
            8: StatDenied("403 again"),
            9: StatUnavailable("503 backend error"),
        }
    )

    async def run() -> dict[str, Any]:
        kube = KubeClient.from_kubeconfig(watcher_identity, timeout=10)
        applier = Applier(kube, [StorageRoot.parse("gs://films/ws")], object_stat=storage)
        out: dict[str, Any] = {}
        try:
            out["first"] = await applier.apply(_unsized(uri, 5))
            out["again"] = await applier.apply(_unsized(uri, 5))  # duplicate: no read
            out["older"] = await applier.apply(_unsized(uri, 4))  # older: no read
            out["gone"] = await applier.apply(_unsized(uri, 6))  # overwritten since
            out["denied"] = await applier.apply(_unsized(uri, 7))
            out["denied again"] = await applier.apply(_unsized(uri, 8))
            try:
                await applier.apply(_unsized(uri, 9))
            except RetryLater as exc:
                out["unavailable"] = exc.reason
            no_reader = Applier(kube, [StorageRoot.parse("gs://films/ws")])
            out["no reader"] = await no_reader.apply(_unsized(uri, 10))
        finally:
            await kube.close()
        return out

    with caplog.at_level(logging.INFO, "stereo_operator.watcher"):
        out = asyncio.run(run())
    reasons = {k: (v.outcome, v.reason) if isinstance(v, Result) else v for k, v in out.items()}
    assert reasons == {
        "first": (Outcome.APPLIED, ""),
        "again": (Outcome.DUPLICATE, "already-recorded"),
        "older": (Outcome.IGNORED, "older-than-recorded"),
        "gone": (Outcome.IGNORED, "object-gone"),
        "denied": (Outcome.IGNORED, "size-unknown"),
        "denied again": (Outcome.IGNORED, "size-unknown"),
        "unavailable": "stat-unavailable",
        "no reader": (Outcome.IGNORED, "size-unknown"),
    }
    assert storage.reads == [5, 6, 7, 8, 9]
    final = completion(api, namespace, name)
    assert final is not None
    assert (final["size"], final["etag"], final["generation"], final["source"]) == (
        4321,
        "CJvN",
        5,
        "pubsub",
    )
    assert final["eventTime"] == "2026-11-25T18:00:00.123456Z"
    loud = [r for r in caplog.records if "without payload" in r.getMessage()]
    # One INFO about reading sizes, one ERROR (per applier) about sizes that cannot be read.
    assert [r.levelname for r in loud].count("ERROR") == 2
    assert [r.levelname for r in loud].count("INFO") == 1
