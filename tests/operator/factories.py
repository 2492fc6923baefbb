"""Builders of the operator's inputs for unit tests: views, snapshots, plans."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from stereo_operator import jobs
from stereo_operator.backends import backend_for, observe_segments
from stereo_operator.config import OperatorConfig
from stereo_operator.labels import Role
from stereo_operator.reconcile import Capacity, Snapshot, VideoJobState
from stereo_operator.segments import segment_spec
from stereo_operator.views import JobView, SegmentView
from stereo_types.layout import StorageRoot, VideoJobRef, final_output_uri
from stereo_types.plan import PlannedSegment, SourceWindow, SplitPlan
from stereo_types.segment import SegmentStatus
from stereo_types.videojob import VideoJobPhase, VideoJobSpec, VideoJobStatus

NOW = datetime(2030, 1, 1, 12, 0, 0, tzinfo=UTC)
REF = VideoJobRef("films", "movie", "0000-uid-1111")
ROOT = StorageRoot.parse("file:///ws")
CONFIG = OperatorConfig(workspace="file:///ws", max_inflight=100, segment_creates_per_tick=100)


def spec(**overrides: Any) -> VideoJobSpec:
    data: dict[str, Any] = {
        "source": "file:///in/movie.mp4",
        "segmentSeconds": 2,
        "parallelism": 2,
        "maxRetries": 2,
        "backoffSeconds": 10,
        "backend": {"type": "stub", "engine": "copy"},
        "timeouts": {"completionGraceSeconds": 5},
    }
    data.update(overrides)
    return VideoJobSpec.model_validate(data)


def status(**fields: Any) -> VideoJobStatus:
    return VideoJobStatus.model_validate(fields)


def window(start_frame: int, frame_count: int, pre_roll: int = 0) -> SourceWindow:
    """Frames [start - pre_roll, start + count) of a constant-rate source whose frame n has
    pts n, decoded from its first keyframe."""
    first = start_frame - pre_roll
    return SourceWindow(
        stream_index=0,
        time_base_num=1,
        time_base_den=24,
        first_pts=first,
        last_pts=start_frame + frame_count - 1,
        pre_roll_frames=pre_roll,
        frame_count=frame_count,
        lead_frames=first,
        bytes=1000 * (pre_roll + frame_count),
    )


def plan(count: int, pre_roll: int = 0) -> SplitPlan:
    segments = [
        PlannedSegment(
            index=i,
            input_uri="file:///in/movie.mp4",
            window=window(48 * i, 48, pre_roll if i else 0),
            output_uri=f"file:///ws/films/movie/0000-uid-1111/segments/{i:05d}/output.mp4",
            start_frame=48 * i,
            frame_count=48,
            pre_roll_frames=pre_roll if i else 0,
            start_seconds=2.0 * i,
            duration_seconds=2.0,
        )
        for i in range(count)
    ]
    return SplitPlan(
        source="file:///in/movie.mp4",
        fps_num=24,
        fps_den=1,
        frame_count=48 * count,
        width=160,
        height=90,
        duration_seconds=2.0 * count,
        segment_seconds=2.0,
        segment_frames=48,
        pre_roll_frames=pre_roll,
        segments=segments,
    )


def segment(
    index: int,
    *,
    vj_spec: VideoJobSpec | None = None,
    rv: str = "1",
    **status_fields: Any,
) -> SegmentView:
    planned = plan(index + 1).segments[index]
    return SegmentView(
        name=f"movie-{index:05d}",
        namespace=REF.namespace,
        uid=f"seg-uid-{index}",
        resource_version=rv,
        spec=segment_spec(REF, vj_spec or spec(), ROOT, planned),
        status=SegmentStatus.model_validate(status_fields),
        deleting=False,
    )


def running(index: int, attempts: int = 1, **fields: Any) -> SegmentView:
    return segment(
        index,
        phase="Running",
        attempts=attempts,
        jobName=jobs.inference_job_name(REF, index, attempts),
        startTime=NOW - timedelta(minutes=1),
        **fields,
    )


def job(
    role: Role,
    *,
    index: int | None = None,
    attempt: int | None = None,
    state: str = "active",
    finished_at: datetime | None = None,
    reason: str | None = None,
    message: str | None = None,
    deleting: bool = False,
) -> JobView:
    if role is Role.SPLIT:
        name = jobs.split_job_name(REF)
    elif role is Role.ASSEMBLE:
        name = jobs.assemble_job_name(REF)
    else:
        assert index is not None and attempt is not None
        name = jobs.inference_job_name(REF, index, attempt)
    failed = state == "failed"
    return JobView(
        name=name,
        namespace=REF.namespace,
        videojob_uid=REF.uid,
        role=role,
        index=index,
        attempt=attempt,
        succeeded=state == "succeeded",
        failed=failed,
        finished_at=finished_at or (NOW - timedelta(seconds=30) if state != "active" else None),
        reason=reason or ("BackoffLimitExceeded" if failed else None),
        message=message or ("Job has reached the specified backoff limit" if failed else None),
        deleting=deleting,
    )


def attempt_job(index: int, attempt: int = 1, state: str = "active", **kw: Any) -> JobView:
    return job(Role.INFERENCE, index=index, attempt=attempt, state=state, **kw)


def snapshot(
    *,
    vj_spec: VideoJobSpec | None = None,
    vj_status: VideoJobStatus | None = None,
    segments: Iterable[SegmentView] = (),
    jobs_: Iterable[JobView] = (),
    share: int = 100,
    cluster_free: int = 100,
    now: datetime = NOW,
    deleting: bool = False,
    config: OperatorConfig = CONFIG,
) -> Snapshot:
    the_spec = vj_spec or spec()
    the_status = vj_status or status()
    segs = list(segments)
    all_jobs = list(jobs_)
    backend_error = None
    observations = {}
    try:
        backend = backend_for(REF, the_spec, config, all_jobs)
        observations = observe_segments(backend, segs)
    except Exception as exc:
        backend_error = str(exc)
    return Snapshot(
        videojob=VideoJobState(
            ref=REF,
            generation=1,
            spec=the_spec,
            status=the_status,
            root=ROOT,
            output_uri=final_output_uri(ROOT, REF, "mp4"),
            deleting=deleting,
        ),
        segments=segs,
        observations=observations,
        split_job=next((j for j in all_jobs if j.role is Role.SPLIT), None),
        assemble_job=next((j for j in all_jobs if j.role is Role.ASSEMBLE), None),
        capacity=Capacity(share=share, cluster_free=cluster_free),
        now=now,
        backend_error=backend_error,
    )


def running_status(total: int, **fields: Any) -> VideoJobStatus:
    base: dict[str, Any] = {
        "phase": VideoJobPhase.RUNNING.value,
        "segmentsTotal": total,
        "startTime": NOW - timedelta(minutes=5),
        "outputUri": final_output_uri(ROOT, REF, "mp4"),
    }
    return status(**{**base, **fields})
