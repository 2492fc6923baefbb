"""The `job` backend: one Kubernetes Job per attempt, observed from the operator's Job index."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from stereo_operator import jobs
from stereo_operator.backends.base import AttemptState, SegmentObservation
from stereo_operator.config import OperatorConfig
from stereo_operator.labels import Role
from stereo_operator.views import JobView, SegmentView
from stereo_types.backend import Engine
from stereo_types.layout import VideoJobRef
from stereo_types.videojob import VideoJobSpec

if TYPE_CHECKING:
    from stereo_operator.kube import Kube

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def attempt_state(job: JobView | None) -> AttemptState:
    if job is None:
        return AttemptState.missing()
    if job.succeeded:
        return AttemptState.succeeded(job.finished_at or _EPOCH, job_name=job.name)
    if job.failed:
        return AttemptState.failed(
            job.reason or "JobFailed",
            job.message or "the inference Job failed",
            bad_input=job.bad_input,
            finished_at=job.finished_at,
            job_name=job.name,
        )
    return AttemptState.running(job.name)


class JobBackend:
    """Runs each attempt as a Job from the config's inference template."""

    name = "job"

    def __init__(
        self,
        ref: VideoJobRef,
        spec: VideoJobSpec,
        config: OperatorConfig,
        jobs_of_videojob: Iterable[JobView],
        kube: Kube | None = None,
    ) -> None:
        self.ref = ref
        self.spec = spec
        self.config = config
        self.kube = kube
        # index -> attempt -> Job (by index, so observing all segments stays linear in them);
        # a Job being deleted is as good as gone for a new attempt but still holds its slot,
        # so it stays in the map.
        self._jobs: dict[int, dict[int, JobView]] = {}
        for job in jobs_of_videojob:
            if job.role is Role.INFERENCE and job.index is not None and job.attempt is not None:
                self._jobs.setdefault(job.index, {})[job.attempt] = job

    # What a subclass changes.
    @property
    def engine(self) -> Engine:
        return self.spec.backend.engine

    @property
    def gpus(self) -> int:
        return self.config.inference.gpus

    def observe(self, segment: SegmentView, attempt: int) -> SegmentObservation:
        mine = self._jobs.get(segment.index, {})
        current = attempt_state(mine.get(attempt)) if attempt > 0 else AttemptState.missing()
        return SegmentObservation(
            current=current,
            latest_attempt=max(mine, default=0),
            active_attempts=frozenset(a for a, j in mine.items() if j.active),
        )

    def manifest(self, segment: SegmentView, attempt: int) -> jobs.Manifest:
        return jobs.inference_job(
            self.ref,
            segment.name,
            segment.uid,
            segment.spec,
            attempt,
            self.config,
            engine=self.engine,
            gpus=self.gpus,
            deadline_seconds=self.spec.timeouts.segment_seconds,
        )

    def _kube(self) -> Kube:
        if self.kube is None:
            raise RuntimeError("this backend was built for observing only")
        return self.kube

    def submit(self, segment: SegmentView, attempt: int) -> str:
        manifest = self.manifest(segment, attempt)
        self._kube().create_job(manifest)
        name: str = manifest["metadata"]["name"]
        return name

    def cancel(self, segment: SegmentView, attempts: Iterable[int]) -> None:
        for attempt in attempts:
            name = jobs.inference_job_name(self.ref, segment.index, attempt)
            self._kube().delete_job(self.ref.namespace, name)
