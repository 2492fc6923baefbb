"""kopf wiring: three indexes, one timer per VideoJob, a finalizer for cleanup.

Decisions come only from the indexes (kopf keeps them from its watch streams; it fills them
before any handler runs, also after a restart), never from memory of earlier ticks and never
from list calls per tick.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import kopf

from stereo_operator import labels, metrics, segments
from stereo_operator.kube import load_configuration
from stereo_operator.reconcile import Fetched, invalid_spec_patch, reconcile, storage_needs
from stereo_operator.tick import Runtime, execute, fetch, prepare
from stereo_operator.views import (
    JobView,
    SegmentView,
    VideoJobSummary,
    job_view,
    segment_view,
    videojob_summary,
)
from stereo_storage import StorageError
from stereo_types.layout import VideoJobRef, videojob_prefix_uri
from stereo_types.names import GROUP, SEGMENT_PLURAL, VERSION, VIDEOJOB_PLURAL
from stereo_types.plan import plan_uri
from stereo_types.videojob import (
    VideoJobPhase,
    VideoJobSpec,
    VideoJobStatus,
    resolve_output_uri,
    resolve_workspace,
)

log = logging.getLogger(__name__)

# Index names: kopf passes each index to handlers as a keyword argument of this name.
JOBS_INDEX = "stereo_jobs"
SEGMENTS_INDEX = "stereo_segments"
VIDEOJOBS_INDEX = "stereo_videojobs"

# How long the finalizer waits for a deleted VideoJob's pods to stop before deleting files
# anyway (they would otherwise write into a folder being emptied).
JOB_STOP_WAIT_SECONDS = 60.0
STORAGE_RETRY_DELAY = 1.0


def connection_info(cfg: Any) -> kopf.ConnectionInfo:
    header = cfg.get_api_key_with_prefix("BearerToken") or cfg.get_api_key_with_prefix(
        "authorization"
    )
    scheme, _, token = (header or "").rpartition(" ")
    return kopf.ConnectionInfo(
        server=cfg.host,
        ca_path=cfg.ssl_ca_cert,
        insecure=not cfg.verify_ssl,
        scheme=scheme or None,
        token=token or None,
        certificate_path=cfg.cert_file,
        private_key_path=cfg.key_file,
    )


def _now() -> datetime:
    return datetime.now(UTC)


def _not_succeeded(status: Mapping[str, Any], **_: Any) -> bool:
    # A Succeeded VideoJob has nothing left to do; a Failed one may still have Jobs to stop.
    return status.get("phase") != VideoJobPhase.SUCCEEDED.value


def register(registry: kopf.OperatorRegistry, rt: Runtime) -> None:
    """Attach every handler to `registry`, closed over the runtime."""

    @kopf.on.login(id="login", registry=registry)
    def login(**_: Any) -> kopf.ConnectionInfo:
        # The same credentials as the operator's own client (kopf's default login would read
        # only $KUBECONFIG or ~/.kube/config, not --kubeconfig).
        return connection_info(load_configuration(rt.kubeconfig))

    @kopf.index(
        "batch",
        "v1",
        "jobs",
        id=JOBS_INDEX,
        labels={labels.VIDEOJOB_UID: kopf.PRESENT},
        registry=registry,
    )
    async def stereo_jobs(body: kopf.Body, **_: Any) -> dict[str, JobView] | None:
        view = job_view(body)
        return {view.videojob_uid: view} if view is not None else None

    @kopf.index(
        GROUP,
        VERSION,
        SEGMENT_PLURAL,
        id=SEGMENTS_INDEX,
        labels={labels.VIDEOJOB_UID: kopf.PRESENT},
        registry=registry,
    )
    async def stereo_segments(
        body: kopf.Body, logger: kopf.Logger, **_: Any
    ) -> dict[str, SegmentView] | None:
        try:
            view = segment_view(body)
        except ValueError as exc:
            logger.warning("ignoring a malformed Segment: %s", exc)
            return None
        return {view.videojob_uid: view}

    @kopf.index(GROUP, VERSION, VIDEOJOB_PLURAL, id=VIDEOJOBS_INDEX, registry=registry)
    async def stereo_videojobs(body: kopf.Body, **_: Any) -> dict[str, VideoJobSummary]:
        summary = videojob_summary(body)
        return {summary.uid: summary}

    @kopf.timer(
        GROUP,
        VERSION,
        VIDEOJOB_PLURAL,
        id="reconcile",
        interval=rt.config.reconcile_seconds,
        when=_not_succeeded,
        registry=registry,
    )
    async def reconcile_videojob(body: kopf.Body, **kwargs: Any) -> None:
        await run_tick(
            rt, body, kwargs[JOBS_INDEX], kwargs[SEGMENTS_INDEX], kwargs[VIDEOJOBS_INDEX]
        )
        # None: kopf stores non-None results in status, which the CRD schema would prune.
        return None

    @kopf.on.delete(GROUP, VERSION, VIDEOJOB_PLURAL, id="cleanup", registry=registry)
    async def cleanup(body: kopf.Body, **kwargs: Any) -> None:
        await cleanup_videojob(rt, body, kwargs[JOBS_INDEX])
        return None

    @kopf.on.startup(id="startup", registry=registry)
    async def startup(**kwargs: Any) -> None:
        loop = asyncio.get_running_loop()
        indexes = (kwargs[JOBS_INDEX], kwargs[SEGMENTS_INDEX], kwargs[VIDEOJOBS_INDEX])

        def snapshot() -> metrics.GaugeSnapshot:
            # The indexes change on the event loop only: read them there.
            future = asyncio.run_coroutine_threadsafe(_gauges(*indexes), loop)
            return future.result(timeout=5)

        metrics.serve(rt.metrics_port, snapshot)


async def _gauges(
    jobs_index: Mapping[str, Any], segments_index: Mapping[str, Any], vj_index: Mapping[str, Any]
) -> metrics.GaugeSnapshot:
    seg_phases: Counter[tuple[str, ...]] = Counter()
    for store in segments_index.values():
        for seg in store:
            seg_phases[(seg.phase.value,)] += 1
    inflight: Counter[tuple[str, ...]] = Counter()
    for store in jobs_index.values():
        for job in store:
            if job.active:
                inflight[(job.role.value,)] += 1
    vj_phases: Counter[tuple[str, ...]] = Counter()
    for store in vj_index.values():
        for vj in store:
            vj_phases[(vj.phase.value,)] += 1
    return {
        "stereo_segments": ("Segments by phase", ["phase"], dict(seg_phases)),
        "stereo_inflight_jobs": ("Jobs not finished, by role", ["role"], dict(inflight)),
        "stereo_videojobs": ("VideoJobs by phase", ["phase"], dict(vj_phases)),
    }


async def run_tick(
    rt: Runtime,
    body: kopf.Body,
    jobs_index: Mapping[str, Any],
    segments_index: Mapping[str, Any],
    videojobs_index: Mapping[str, Any],
) -> None:
    started = time.monotonic()
    meta = body["metadata"]
    try:
        now = _now()
        prepared = prepare(
            rt.config, rt.kube, body, jobs_index, segments_index, videojobs_index, now
        )
        if prepared.invalid_spec is not None:
            await _fail_invalid(rt, body, prepared.invalid_spec, now)
            return
        snap = prepared.snapshot
        assert snap is not None
        needs = storage_needs(snap)
        fetched = await asyncio.to_thread(fetch, rt, snap, needs) if needs else None
        actions = reconcile(snap, fetched or Fetched(), rt.config)
        if not actions:
            return
        outcome = await asyncio.to_thread(execute, rt, snap, prepared.backend, actions)
        for event in outcome.events:
            target: Any = body
            if event.segment is not None:
                seg = event.segment
                target = segments.event_body(seg.namespace, seg.name, seg.uid)
            kopf.event(target, type=event.type, reason=event.reason, message=event.message)
        if outcome.errors:
            metrics.RECONCILE_ERRORS.inc()
            first = outcome.errors[0]
            raise kopf.TemporaryError(
                f"{len(outcome.errors)} write(s) failed, first: {first}",
                delay=rt.config.reconcile_seconds,
            ) from first
    finally:
        metrics.RECONCILE_SECONDS.observe(time.monotonic() - started)
        log.debug("tick", extra={"namespace": meta.get("namespace"), "videojob": meta.get("name")})


async def _fail_invalid(rt: Runtime, body: kopf.Body, message: str, now: datetime) -> None:
    meta = body["metadata"]
    status = VideoJobStatus.model_validate(dict(body.get("status") or {}))
    if status.phase is VideoJobPhase.FAILED:
        return
    patch = invalid_spec_patch(status, int(meta.get("generation") or 0), message, now)
    await asyncio.to_thread(rt.kube.patch_videojob_status, meta["namespace"], meta["name"], patch)
    kopf.warn(body, reason="InvalidSpec", message=message[:1024])


async def cleanup_videojob(rt: Runtime, body: kopf.Body, jobs_index: Mapping[str, Any]) -> None:
    """Stop the VideoJob's Jobs, then delete its intermediate files; never hold the deletion
    forever (storage down): after a few tries, post a Warning and let it go."""
    meta = body["metadata"]
    ref = VideoJobRef(meta["namespace"], meta["name"], meta["uid"])
    extra = {"namespace": ref.namespace, "videojob": ref.name}

    def remaining() -> list[Any]:
        return list(jobs_index.get(ref.uid, ()))  # the index follows the deletions live

    if remaining():
        await asyncio.to_thread(rt.kube.delete_jobs_of, ref.namespace, ref.uid)
        deadline = time.monotonic() + JOB_STOP_WAIT_SECONDS
        # Polling: the index has no change notification to wait on.
        while remaining() and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.5)
        if remaining():
            left = len(remaining())
            log.warning("%d Job(s) still stopping; deleting files anyway", left, extra=extra)
    try:
        spec = VideoJobSpec.model_validate(dict(body.get("spec") or {}))
        root = resolve_workspace(spec, rt.config.workspace)
        output = resolve_output_uri(spec, ref, rt.config.workspace)
    except ValueError as exc:
        log.warning("not cleaning up: the spec is invalid: %s", exc, extra=extra)
        return
    keep = output if spec.output.keep_on_delete else None
    prefix = videojob_prefix_uri(root, ref)
    error: Exception | None = None
    for attempt in range(rt.config.cleanup_attempts):
        try:
            deleted = await asyncio.to_thread(rt.workspace.delete_intermediates, prefix, keep)
            if keep is None and not output.startswith(prefix.rstrip("/") + "/"):
                await asyncio.to_thread(rt.workspace.delete_object, output)
            rt.workspace.forget_plan(plan_uri(root, ref))
            log.info(
                "deleted %d intermediate file(s) under %s",
                deleted,
                prefix,
                extra={"namespace": ref.namespace, "videojob": ref.name},
            )
            return
        except (StorageError, OSError) as exc:
            error = exc
            if attempt + 1 < rt.config.cleanup_attempts:
                await asyncio.sleep(STORAGE_RETRY_DELAY * 2**attempt)
    message = (
        f"could not delete the intermediate files under {prefix} after "
        f"{rt.config.cleanup_attempts} tries ({error}); they are left behind"
    )
    log.warning(message, extra=extra)
    kopf.warn(body, reason="CleanupFailed", message=message)
