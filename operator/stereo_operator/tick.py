"""One reconcile tick of one VideoJob: snapshot the indexes, read storage, decide, write.

The snapshot is taken on the event loop (the kopf indexes change only there, so it is
consistent); storage reads and API writes run in worker threads so a slow store or API server
never stalls the watch streams.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from stereo_operator import metrics
from stereo_operator.backends import Backend, BackendUnavailable, backend_for, observe_segments
from stereo_operator.config import OperatorConfig
from stereo_operator.fairshare import Demand, fair_shares
from stereo_operator.kube import Kube
from stereo_operator.labels import Role
from stereo_operator.reconcile import (
    Actions,
    Capacity,
    Event,
    Fetched,
    SegmentPatch,
    Snapshot,
    StorageNeeds,
    VideoJobState,
)
from stereo_operator.storage import PlanUnreadable, Workspace
from stereo_operator.views import JobView, SegmentView, VideoJobSummary
from stereo_storage import StorageError
from stereo_types.layout import VideoJobRef
from stereo_types.plan import plan_uri
from stereo_types.segment import SegmentPhase
from stereo_types.videojob import (
    VideoJobPhase,
    VideoJobSpec,
    VideoJobStatus,
    resolve_output_uri,
    resolve_workspace,
)

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    """What every tick shares: config, API client, stores and the writer threads."""

    config: OperatorConfig
    kube: Kube
    workspace: Workspace
    pool: ThreadPoolExecutor
    metrics_port: int = 0
    kubeconfig: str | None = None


# ---------------------------------------------------------------------------------------------
# Snapshot (event loop)


def _values(index: Mapping[str, Iterable[Any]], key: str) -> list[Any]:
    store = index.get(key)
    return list(store) if store is not None else []


def _role_job(jobs: Iterable[JobView], role: Role) -> JobView | None:
    return next((j for j in jobs if j.role is role), None)


def capacity_for(
    uid: str,
    cap: int,
    videojobs: Iterable[VideoJobSummary],
    jobs_index: Mapping[str, Iterable[JobView]],
    segments_index: Mapping[str, Iterable[SegmentView]],
) -> Capacity:
    """This VideoJob's fair share of the cluster-wide cap, and the cap's free slots."""
    active = {
        key: sum(1 for j in jobs if j.role is Role.INFERENCE and j.active)
        for key, jobs in jobs_index.items()
    }
    demands = []
    for vj in videojobs:
        running = active.get(vj.uid, 0)
        wanted = running
        if vj.phase is VideoJobPhase.RUNNING and not vj.suspend and not vj.deleting:
            segs = list(segments_index.get(vj.uid, ()))
            startable = sum(1 for s in segs if s.phase is SegmentPhase.PENDING)
            startable += max(0, vj.segments_total - len(segs))
            wanted = max(running, min(vj.parallelism, running + startable))
        demands.append(Demand(vj.uid, wanted, vj.created_at))
    shares = fair_shares(cap, demands)
    free = max(0, cap - sum(active.values()))
    return Capacity(share=shares.get(uid, 0), cluster_free=free)


@dataclass
class Prepared:
    snapshot: Snapshot | None
    backend: Backend | None
    invalid_spec: str | None = None


def prepare(
    config: OperatorConfig,
    kube: Kube | None,
    body: Mapping[str, Any],
    jobs_index: Mapping[str, Iterable[JobView]],
    segments_index: Mapping[str, Iterable[SegmentView]],
    videojobs_index: Mapping[str, Iterable[VideoJobSummary]],
    now: datetime,
) -> Prepared:
    meta = body["metadata"]
    ref = VideoJobRef(meta["namespace"], meta["name"], meta["uid"])
    try:
        spec = VideoJobSpec.model_validate(dict(body.get("spec") or {}))
        root = resolve_workspace(spec, config.workspace)
        output_uri = resolve_output_uri(spec, ref, config.workspace)
    except ValueError as exc:  # pydantic's ValidationError is a ValueError
        return Prepared(None, None, invalid_spec=str(exc))
    status = VideoJobStatus.model_validate(dict(body.get("status") or {}))
    my_jobs = _values(jobs_index, ref.uid)
    my_segments = _values(segments_index, ref.uid)
    backend: Backend | None
    try:
        backend = backend_for(ref, spec, config, my_jobs, kube)
        backend_error = None
    except BackendUnavailable as exc:
        backend, backend_error = None, str(exc)
    videojobs = [v for store in videojobs_index.values() for v in store]
    snapshot = Snapshot(
        videojob=VideoJobState(
            ref=ref,
            generation=int(meta.get("generation") or 0),
            spec=spec,
            status=status,
            root=root,
            output_uri=output_uri,
            deleting=bool(meta.get("deletionTimestamp")),
        ),
        segments=my_segments,
        observations=observe_segments(backend, my_segments) if backend else {},
        split_job=_role_job(my_jobs, Role.SPLIT),
        assemble_job=_role_job(my_jobs, Role.ASSEMBLE),
        capacity=capacity_for(ref.uid, config.max_inflight, videojobs, jobs_index, segments_index),
        now=now,
        backend_error=backend_error,
    )
    return Prepared(snapshot, backend)


# ---------------------------------------------------------------------------------------------
# Reads (worker thread)


def fetch(rt: Runtime, snap: Snapshot, needs: StorageNeeds) -> Fetched:
    """Answer StorageNeeds. A store that is unavailable leaves the answer out (the decision
    waits for the next tick) rather than failing the tick."""
    vj = snap.videojob
    plan = plan_error = None
    if needs.plan:
        uri = plan_uri(vj.root, vj.ref)
        try:
            plan = rt.workspace.read_plan(uri)
        except PlanUnreadable as exc:
            plan_error = str(exc)
        except StorageError as exc:
            log.warning("cannot read the plan %s: %s", uri, exc, extra=_extra(vj.ref))
    outputs = {}
    for index, uri in needs.segment_outputs:
        try:
            outputs[index] = rt.workspace.stat(uri)
        except StorageError as exc:
            log.warning("cannot check %s: %s", uri, exc, extra=_extra(vj.ref, index))
    final = None
    final_checked = False
    if needs.final_output is not None:
        try:
            final = rt.workspace.stat(needs.final_output)
            final_checked = True
        except StorageError as exc:
            log.warning("cannot check %s: %s", needs.final_output, exc, extra=_extra(vj.ref))
    seams = None
    if needs.seams is not None:
        try:
            seams = rt.workspace.read_seams(needs.seams)
        except StorageError as exc:
            log.warning("cannot read %s: %s", needs.seams, exc, extra=_extra(vj.ref))
    details = {}
    for job_name in needs.failure_details:
        message = rt.kube.termination_message(vj.ref.namespace, job_name)
        if message:
            details[job_name] = message
    return Fetched(
        plan=plan,
        plan_error=plan_error,
        segment_outputs=outputs,
        final_output=final,
        final_checked=final_checked,
        seams=seams,
        failure_details=details,
    )


# ---------------------------------------------------------------------------------------------
# Writes (worker threads)


@dataclass
class Outcome:
    events: list[Event] = field(default_factory=list)
    errors: list[BaseException] = field(default_factory=list)
    videojob_patched: bool = False


def _extra(ref: VideoJobRef, index: int | None = None) -> dict[str, Any]:
    extra: dict[str, Any] = {"namespace": ref.namespace, "videojob": ref.name}
    if index is not None:
        extra["segment"] = index
    return extra


def _observe_patch(sp: SegmentPatch) -> None:
    if sp.completed is not None:
        metrics.observe_completion(
            sp.completed.source.value,
            sp.completed.event_time,
            sp.completed.recorded_at,
            sp.segment.status.start_time,
        )
        if "conversion" in sp.patch:
            metrics.observe_conversion(sp.segment.spec, sp.patch["conversion"])
    reason = sp.patch.get("lastFailureReason")
    if reason:
        metrics.ATTEMPT_FAILURES.labels(reason=reason).inc()
        if sp.retry:
            metrics.RETRIES.inc()


def execute(rt: Runtime, snap: Snapshot, backend: Backend | None, actions: Actions) -> Outcome:
    """Make the writes. Per-segment writes run in parallel; the VideoJob's status goes last,
    and goes even if some segment write failed: every decision is re-derived next tick."""
    ref = snap.videojob.ref
    outcome = Outcome()
    done_segments: set[int] = set()

    def launch(seg: SegmentView, attempt: int, patch: Mapping[str, Any]) -> None:
        assert backend is not None
        backend.submit(seg, attempt)
        metrics.JOBS_LAUNCHED.inc()
        rt.kube.patch_segment_status(ref.namespace, seg.name, patch)
        log.info("started attempt %d", attempt, extra=_extra(ref, seg.index))

    def patch_segment(sp: SegmentPatch) -> None:
        ok = rt.kube.patch_segment_status(
            ref.namespace, sp.segment.name, sp.patch, sp.resource_version
        )
        if ok:
            done_segments.add(sp.segment.index)
            _observe_patch(sp)
            phase = sp.patch.get("phase")
            log.info("segment %s", phase, extra=_extra(ref, sp.segment.index))

    def cancel(seg: SegmentView, attempts: frozenset[int]) -> None:
        assert backend is not None
        backend.cancel(seg, sorted(attempts))
        log.info("cancelled attempts %s", sorted(attempts), extra=_extra(ref, seg.index))

    futures: list[Future[Any]] = []
    submit = rt.pool.submit
    futures += [submit(rt.kube.create_job, m) for m in actions.create_jobs]
    futures += [submit(rt.kube.create_segment, m) for m in actions.create_segments]
    futures += [submit(launch, a.segment, a.attempt, a.patch) for a in actions.launches]
    if backend is not None:
        futures += [submit(backend.submit, r.segment, r.attempt) for r in actions.resubmits]
        futures += [submit(cancel, c.segment, c.attempts) for c in actions.cancels]
    futures += [submit(patch_segment, sp) for sp in actions.segment_patches]
    for future in futures:
        try:
            future.result()
        except Exception as exc:
            outcome.errors.append(exc)
    if actions.videojob_patch:
        try:
            outcome.videojob_patched = rt.kube.patch_videojob_status(
                ref.namespace, ref.name, actions.videojob_patch
            )
        except Exception as exc:
            outcome.errors.append(exc)
    for event in actions.events:
        if event.segment is None:
            if outcome.videojob_patched:
                outcome.events.append(event)
        elif event.segment.index in done_segments:
            outcome.events.append(event)
    return outcome
