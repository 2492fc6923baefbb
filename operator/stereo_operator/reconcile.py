"""The operator's decisions, as a pure function of cluster state.

`reconcile(snapshot, fetched, config)` takes what the indexes show (the VideoJob, its
Segments, its Jobs, the cluster-wide capacity), what storage showed when asked
(`storage_needs` says what to ask), and the time; it returns the writes to make. It never
reads memory from an earlier tick, so a restarted operator decides exactly what the old one
would have, and deciding twice from the same state gives the same writes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from stereo_operator import conversion, jobs, segments
from stereo_operator.backends.base import AttemptPhase, AttemptState, SegmentObservation
from stereo_operator.config import OperatorConfig
from stereo_operator.segments import AttemptFailure, Patch, StoredObject, rfc3339
from stereo_operator.views import JobView, SegmentView
from stereo_types import refusals
from stereo_types.conditions import Condition, ConditionStatus, find_condition, set_condition
from stereo_types.layout import StorageRoot, VideoJobRef
from stereo_types.plan import SplitPlan, plan_uri
from stereo_types.seams import SeamScore, seams_uri
from stereo_types.segment import SegmentCompletion, SegmentConversion, SegmentPhase
from stereo_types.videojob import VideoJobPhase, VideoJobSpec, VideoJobStatus, format_progress

# Condition types on a VideoJob.
PROGRESSING = "Progressing"
SUSPENDED = "Suspended"
FAILED = "Failed"
SUCCEEDED = "Succeeded"

# Failure reasons on a VideoJob (condition reason, event reason).
BACKEND_UNAVAILABLE = "BackendUnavailable"
BAD_INPUT = "BadInput"
MODEL_UNAVAILABLE = refusals.MODEL_UNAVAILABLE
SPLIT_FAILED = "SplitFailed"
PLAN_UNREADABLE = "PlanUnreadable"
SEGMENT_FAILED = "SegmentFailed"
ASSEMBLE_FAILED = "AssembleFailed"
OUTPUT_MISSING = "OutputMissing"
INVALID_SPEC = "InvalidSpec"

# Failure reason on a Segment that the operator stopped because its VideoJob failed.
VIDEOJOB_FAILED = "VideoJobFailed"

# An ETA from fewer completions than this is noise.
ETA_MIN_COMPLETED = 3

_TERMINAL = (VideoJobPhase.SUCCEEDED, VideoJobPhase.FAILED)


# ---------------------------------------------------------------------------------------------
# Inputs


@dataclass(frozen=True, slots=True)
class VideoJobState:
    ref: VideoJobRef
    generation: int
    spec: VideoJobSpec
    status: VideoJobStatus
    root: StorageRoot
    output_uri: str
    deleting: bool = False


@dataclass(frozen=True, slots=True)
class Capacity:
    share: int
    """This VideoJob's fair share of the cluster-wide cap, in inference Jobs."""
    cluster_free: int
    """The cap minus every active inference Job in the cluster."""


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything the indexes show about one VideoJob, at one moment."""

    videojob: VideoJobState
    segments: Sequence[SegmentView]
    observations: Mapping[int, SegmentObservation]
    split_job: JobView | None
    assemble_job: JobView | None
    capacity: Capacity
    now: datetime
    backend_error: str | None = None


@dataclass(frozen=True, slots=True)
class StorageNeeds:
    """The reads a tick needs before it can decide."""

    plan: bool = False
    segment_outputs: tuple[tuple[int, str], ...] = ()
    final_output: str | None = None
    seams: str | None = None
    """The seam score the assemble Job published."""
    failure_details: tuple[str, ...] = ()
    """Jobs whose pods' termination messages explain a failure about to be recorded."""

    def __bool__(self) -> bool:
        return bool(
            self.plan
            or self.segment_outputs
            or self.final_output
            or self.seams
            or self.failure_details
        )


@dataclass(frozen=True, slots=True)
class Fetched:
    """What the reads in StorageNeeds returned."""

    plan: SplitPlan | None = None
    plan_error: str | None = None
    segment_outputs: Mapping[int, StoredObject | None] = field(default_factory=dict)
    final_output: StoredObject | None = None
    final_checked: bool = False
    """Whether storage answered about the final output (None above then means absent)."""
    seams: SeamScore | None = None
    failure_details: Mapping[str, str] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------
# Outputs


@dataclass(frozen=True, slots=True)
class Launch:
    segment: SegmentView
    attempt: int
    patch: Patch


@dataclass(frozen=True, slots=True)
class Resubmit:
    """The current attempt's Job is gone: create it again under its own name."""

    segment: SegmentView
    attempt: int


@dataclass(frozen=True, slots=True)
class SegmentPatch:
    segment: SegmentView
    patch: Patch
    resource_version: str | None = None
    """Set when the patch must not overwrite a concurrent write (a completion)."""
    completed: SegmentCompletion | None = None
    retry: bool = False


@dataclass(frozen=True, slots=True)
class Cancel:
    segment: SegmentView
    attempts: frozenset[int]


@dataclass(frozen=True, slots=True)
class Event:
    type: str  # Normal | Warning
    reason: str
    message: str
    segment: SegmentView | None = None
    """None: the event is about the VideoJob."""


@dataclass
class Actions:
    create_jobs: list[jobs.Manifest] = field(default_factory=list)
    create_segments: list[jobs.Manifest] = field(default_factory=list)
    launches: list[Launch] = field(default_factory=list)
    resubmits: list[Resubmit] = field(default_factory=list)
    segment_patches: list[SegmentPatch] = field(default_factory=list)
    cancels: list[Cancel] = field(default_factory=list)
    videojob_patch: Patch | None = None
    events: list[Event] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(
            self.create_jobs
            or self.create_segments
            or self.launches
            or self.resubmits
            or self.segment_patches
            or self.cancels
            or self.videojob_patch
            or self.events
        )


# ---------------------------------------------------------------------------------------------
# What storage must be asked first


def _observation(snap: Snapshot, index: int) -> SegmentObservation:
    return snap.observations.get(index) or SegmentObservation(AttemptState.missing())


def _awaits_check(snap: Snapshot, segment: SegmentView) -> bool:
    """A Running segment whose Job succeeded but whose output no event reported in time."""
    if segment.phase is not SegmentPhase.RUNNING or segment.completion is not None:
        return False
    obs = _observation(snap, segment.index)
    if obs.latest_attempt > segment.attempts or obs.current.phase is not AttemptPhase.SUCCEEDED:
        return False
    finished = obs.current.finished_at or snap.now
    grace = timedelta(seconds=snap.videojob.spec.timeouts.completion_grace_seconds)
    return snap.now - finished >= grace


def _failed_attempt_job(snap: Snapshot, segment: SegmentView) -> str | None:
    if segment.phase is not SegmentPhase.RUNNING or segment.completion is not None:
        return None
    obs = _observation(snap, segment.index)
    if obs.latest_attempt > segment.attempts or obs.current.phase is not AttemptPhase.FAILED:
        return None
    return obs.current.job_name


def _existing(snap: Snapshot) -> dict[int, SegmentView]:
    return {s.index: s for s in snap.segments if not s.deleting}


def storage_needs(snap: Snapshot) -> StorageNeeds:
    vj = snap.videojob
    phase = vj.status.phase
    if vj.deleting or phase in _TERMINAL or snap.backend_error:
        return StorageNeeds()
    if phase is VideoJobPhase.SPLITTING:
        split = snap.split_job
        if split is not None and split.succeeded:
            return StorageNeeds(plan=True)
        if split is not None and split.failed:
            return StorageNeeds(failure_details=(split.name,))
        return StorageNeeds()
    if phase is VideoJobPhase.RUNNING:
        existing = _existing(snap)
        outputs = tuple(
            (s.index, s.spec.output_uri)
            for s in sorted(existing.values(), key=lambda s: s.index)
            if _awaits_check(snap, s)
        )
        failed = tuple(
            name
            for s in sorted(existing.values(), key=lambda s: s.index)
            if (name := _failed_attempt_job(snap, s)) is not None
        )
        return StorageNeeds(
            plan=len(existing) < vj.status.segments_total,
            segment_outputs=outputs,
            failure_details=failed,
        )
    if phase is VideoJobPhase.ASSEMBLING:
        assemble = snap.assemble_job
        if assemble is not None and assemble.succeeded:
            return StorageNeeds(
                final_output=vj.output_uri, seams=seams_uri(plan_uri(vj.root, vj.ref))
            )
        if assemble is not None and assemble.failed:
            return StorageNeeds(failure_details=(assemble.name,))
    return StorageNeeds()


# ---------------------------------------------------------------------------------------------
# The decision


@dataclass(slots=True)
class _Seg:
    """A segment's state after this tick's transitions (for counters and slots)."""

    view: SegmentView
    phase: SegmentPhase
    attempts: int
    occupies_slot: bool = False
    launchable: bool = False
    failure_reason: str | None = None
    failure_message: str | None = None
    conversion: SegmentConversion | None = None
    """Figures recorded this tick (the view's status holds earlier ones)."""
    stopped: bool = False
    """Ended Failed only because the VideoJob failed (not counted as a failed segment)."""


def _job_failure_message(job: JobView, details: Mapping[str, str], what: str) -> str:
    detail = (details.get(job.name) or "").strip()
    base = job.message or f"the {what} Job failed"
    return detail or base


class _Tick:
    def __init__(self, snap: Snapshot, fetched: Fetched, config: OperatorConfig) -> None:
        self.snap = snap
        self.fetched = fetched
        self.config = config
        self.vj = snap.videojob
        self.spec = snap.videojob.spec
        self.now = snap.now.astimezone(UTC).replace(microsecond=0)
        self.out = Actions()
        self.phase = self.vj.status.phase
        self.failure: tuple[str, str] | None = None
        # The seam score, read once the assemble Job has succeeded.
        self.seams: SeamScore | None = None
        # Every existing segment as it is; Running-phase transitions replace entries.
        self.segs: dict[int, _Seg] = {
            i: _Seg(v, v.phase, v.attempts) for i, v in _existing(snap).items()
        }
        self.total = self.vj.status.segments_total

    # -- phases ----------------------------------------------------------------------------

    def run(self) -> Actions:
        if self.snap.backend_error:
            self.fail(BACKEND_UNAVAILABLE, self.snap.backend_error)
        if self.phase is VideoJobPhase.PENDING:
            self.phase = VideoJobPhase.SPLITTING
        if self.phase is VideoJobPhase.SPLITTING:
            self.splitting()
        if self.phase is VideoJobPhase.RUNNING:
            self.running()
        if self.phase is VideoJobPhase.ASSEMBLING:
            self.assembling()
        if self.failure is not None:
            self.stop_unfinished(self.failure[1])
        self.out.videojob_patch = self.status_patch()
        return self.out

    def fail(self, reason: str, message: str) -> None:
        if self.failure is None:
            self.failure = (reason, message)
            self.phase = VideoJobPhase.FAILED

    def splitting(self) -> None:
        split = self.snap.split_job
        if split is None:
            self.out.create_jobs.append(
                jobs.split_job(self.vj.ref, self.spec, self.vj.root, self.config)
            )
        elif split.failed:
            self.split_failed(split)
        elif split.succeeded:
            plan = self.fetched.plan
            if plan is None:
                if self.fetched.plan_error is not None:
                    self.fail(PLAN_UNREADABLE, self.fetched.plan_error)
                # else storage did not answer: ask again next tick
            elif not plan.segments:
                self.fail(PLAN_UNREADABLE, "the split plan has no segments")
            else:
                self.total = len(plan.segments)
                self.phase = VideoJobPhase.RUNNING

    def split_failed(self, split: JobView) -> None:
        message = _job_failure_message(split, self.fetched.failure_details, "split")
        refusal = refusals.find_refusal(message) if split.bad_input else None
        if refusal is not None:
            # The plan refused the engine or depth model before reading the source.
            image = self.config.inference.image
            self.fail(refusal.reason, f"image {image} cannot run this VideoJob: {refusal.message}")
            return
        reason = BAD_INPUT if split.bad_input else SPLIT_FAILED
        self.fail(reason, f"split of {self.spec.source} failed: {message}")

    def running(self) -> None:
        existing = _existing(self.snap)
        self.create_missing_segments(existing)
        for index in sorted(existing):
            self.transition(existing[index])
        failed = sorted(i for i, s in self.segs.items() if s.phase is SegmentPhase.FAILED)
        if failed:
            seg = self.segs[failed[0]]
            reason = seg.failure_reason or seg.view.status.last_failure_reason or "Failed"
            detail = seg.failure_message or seg.view.status.last_failure_message or ""
            self.fail(
                SEGMENT_FAILED,
                f"segment {failed[0]} failed after {seg.attempts} attempt(s): "
                f"{reason}: {detail}".rstrip(": "),
            )
        if self.failure is not None:
            self.cancel_everything()
            return
        if not self.spec.suspend:
            self.launch()
        done = len(existing) == self.total > 0 and all(
            s.phase is SegmentPhase.COMPLETED for s in self.segs.values()
        )
        if done:
            self.phase = VideoJobPhase.ASSEMBLING

    def assembling(self) -> None:
        assemble = self.snap.assemble_job
        if assemble is None:
            self.out.create_jobs.append(
                jobs.assemble_job(
                    self.vj.ref,
                    self.spec,
                    self.vj.root,
                    self.vj.output_uri,
                    self.config,
                    segment_bytes=sum(
                        s.view.completion.size or 0
                        for s in self.segs.values()
                        if s.view.completion is not None
                    ),
                )
            )
        elif assemble.failed:
            message = _job_failure_message(assemble, self.fetched.failure_details, "assemble")
            reason = BAD_INPUT if assemble.bad_input else ASSEMBLE_FAILED
            self.fail(reason, f"assembly failed: {message}")
        elif assemble.succeeded:
            if not self.fetched.final_checked:
                return  # storage did not answer: ask again next tick
            if self.fetched.final_output is None:
                self.fail(
                    OUTPUT_MISSING,
                    f"the assemble Job succeeded but {self.vj.output_uri} does not exist",
                )
            else:
                self.phase = VideoJobPhase.SUCCEEDED
                self.seams = self.fetched.seams

    # -- segments ----------------------------------------------------------------------------

    def create_missing_segments(self, existing: Mapping[int, SegmentView]) -> None:
        if len(existing) >= self.total:
            return
        plan = self.fetched.plan
        if plan is None:
            if self.fetched.plan_error is not None:
                self.fail(PLAN_UNREADABLE, self.fetched.plan_error)
            return  # else storage did not answer this time; the next tick asks again
        budget = self.config.segment_creates_per_tick
        for planned in sorted(plan.segments, key=lambda p: p.index):
            if budget <= 0:
                break
            if planned.index not in existing:
                self.out.create_segments.append(
                    segments.segment_manifest(self.vj.ref, self.spec, self.vj.root, planned)
                )
                budget -= 1

    def patch_segment(self, patch: SegmentPatch) -> None:
        index = patch.segment.index
        patch, figures = conversion.with_figures(patch)
        if figures is not None and index in self.segs:
            self.segs[index].conversion = figures
        self.out.segment_patches.append(patch)

    def cancel(self, seg: _Seg, attempts: frozenset[int]) -> None:
        if attempts:
            self.out.cancels.append(Cancel(seg.view, attempts))

    def transition(self, view: SegmentView) -> None:
        obs = _observation(self.snap, view.index)
        seg = _Seg(view, view.phase, view.attempts)
        self.segs[view.index] = seg
        if view.phase in (SegmentPhase.COMPLETED, SegmentPhase.FAILED):
            self.cancel(seg, obs.active_attempts)  # a late duplicate: its result is not needed
            return
        if view.completion is not None:
            self.patch_segment(
                SegmentPatch(
                    view, segments.completed_patch(view.completion), completed=view.completion
                ),
            )
            seg.phase = SegmentPhase.COMPLETED
            self.cancel(seg, obs.active_attempts)
            return
        if obs.latest_attempt > view.attempts:
            self.adopt(seg, obs)
            return
        stale = obs.active_attempts - {view.attempts}
        self.cancel(seg, frozenset(stale))
        if view.phase is SegmentPhase.PENDING:
            self.pending(seg, obs)
        else:
            self.running_attempt(seg, obs)

    def adopt(self, seg: _Seg, obs: SegmentObservation) -> None:
        """A Job exists for an attempt the status does not record (the operator stopped
        between creating it and patching the status): record it instead of starting another."""
        attempt = obs.latest_attempt
        name = jobs.inference_job_name(self.vj.ref, seg.view.index, attempt)
        patch = segments.launch_patch(seg.view.status, attempt, name, self.now)
        self.patch_segment(SegmentPatch(seg.view, patch))
        self.cancel(seg, frozenset(obs.active_attempts - {attempt}))
        seg.phase, seg.attempts = SegmentPhase.RUNNING, attempt
        seg.occupies_slot = attempt in obs.active_attempts

    def pending(self, seg: _Seg, obs: SegmentObservation) -> None:
        status = seg.view.status
        if status.attempts >= segments.max_attempts(self.spec):
            # Only reachable if maxRetries was lowered after attempts were made.
            failure = AttemptFailure(
                status.last_failure_reason or "RetriesExhausted",
                status.last_failure_message or "no attempts left",
            )
            self.record_failure(seg, failure)
            return
        next_time = status.next_attempt_time
        seg.launchable = next_time is None or next_time <= self.now

    def running_attempt(self, seg: _Seg, obs: SegmentObservation) -> None:
        current = obs.current
        if current.phase is AttemptPhase.RUNNING:
            seg.occupies_slot = True
        elif current.phase is AttemptPhase.MISSING:
            if seg.view.attempts == 0:
                seg.launchable = True  # Running with no attempt: only a hand-edited status
            else:
                self.out.resubmits.append(Resubmit(seg.view, seg.view.attempts))
                seg.occupies_slot = True
        elif current.phase is AttemptPhase.SUCCEEDED:
            self.check_output(seg)
        else:
            reason = segments.failure_reason(current.reason or "JobFailed")
            detail = (self.fetched.failure_details.get(current.job_name or "") or "").strip()
            message = detail or current.message or "the inference Job failed"
            failure = AttemptFailure(reason, message, current.bad_input, current.finished_at)
            self.record_failure(seg, failure)

    def check_output(self, seg: _Seg) -> None:
        if not _awaits_check(self.snap, seg.view):
            return  # within the grace period: the storage event should still come
        if seg.view.index not in self.fetched.segment_outputs:
            return  # storage not asked (or did not answer): next tick
        found = self.fetched.segment_outputs[seg.view.index]
        if found is not None:
            completion = segments.reconciled_completion(found, self.now)
            patch = SegmentPatch(
                seg.view,
                segments.verified_patch(completion),
                resource_version=seg.view.resource_version,
                completed=completion,
            )
            self.patch_segment(patch)
            seg.phase = SegmentPhase.COMPLETED
            return
        failure = AttemptFailure(
            OUTPUT_MISSING,
            f"attempt {seg.view.attempts} succeeded but wrote no {seg.view.spec.output_uri}",
            finished_at=_observation(self.snap, seg.view.index).current.finished_at,
        )
        self.record_failure(seg, failure)

    def record_failure(self, seg: _Seg, failure: AttemptFailure) -> None:
        outcome = segments.attempt_failed(seg.view.status, self.spec, failure, self.now)
        self.patch_segment(SegmentPatch(seg.view, outcome.patch, retry=not outcome.final))
        seg.failure_reason, seg.failure_message = failure.reason, failure.message
        attempt = seg.view.attempts
        if outcome.final:
            seg.phase = SegmentPhase.FAILED
            self.out.events.append(
                Event(
                    "Warning",
                    "SegmentFailed",
                    f"attempt {attempt} failed ({failure.reason}): {failure.message}; "
                    "no retries left" + ("" if not failure.bad_input else " (bad input)"),
                    seg.view,
                )
            )
            return
        seg.phase = SegmentPhase.PENDING
        assert outcome.retry_at is not None
        seg.launchable = outcome.retry_at <= self.now
        self.out.events.append(
            Event(
                "Warning",
                "AttemptFailed",
                f"attempt {attempt} failed ({failure.reason}): {failure.message}; "
                f"retrying at {rfc3339(outcome.retry_at)}",
                seg.view,
            )
        )

    def launch(self) -> None:
        occupied = sum(s.occupies_slot for s in self.segs.values())
        capacity = self.snap.capacity
        room = min(
            self.spec.parallelism - occupied,
            capacity.share - occupied,
            capacity.cluster_free,
        )
        candidates = sorted(
            (s for s in self.segs.values() if s.launchable), key=lambda s: s.view.index
        )
        for seg in candidates[: max(0, room)]:
            attempt = seg.attempts + 1
            name = jobs.inference_job_name(self.vj.ref, seg.view.index, attempt)
            patch = segments.launch_patch(seg.view.status, attempt, name, self.now)
            self.out.launches.append(Launch(seg.view, attempt, patch))
            seg.phase, seg.attempts, seg.occupies_slot = SegmentPhase.RUNNING, attempt, True

    def cancel_everything(self) -> None:
        """The VideoJob failed: no inference Job of it may keep a GPU."""
        cancelled: dict[int, set[int]] = {}
        for c in self.out.cancels:
            cancelled.setdefault(c.segment.index, set()).update(c.attempts)
        for view in _existing(self.snap).values():
            active = _observation(self.snap, view.index).active_attempts
            rest = frozenset(active - cancelled.get(view.index, set()))
            if rest:
                self.out.cancels.append(Cancel(view, rest))

    def stop_unfinished(self, failure: str) -> None:
        """The VideoJob failed: every segment not yet done ends Failed, saying why, in the
        same patch as any transition this tick decided for it."""
        self.out.resubmits = []
        at = {sp.segment.index: i for i, sp in enumerate(self.out.segment_patches)}
        for index, seg in sorted(self.segs.items()):
            if seg.phase in (SegmentPhase.COMPLETED, SegmentPhase.FAILED):
                continue
            stop = segments.stopped_patch(VIDEOJOB_FAILED, failure, self.now)
            if index in at:
                earlier = self.out.segment_patches[at[index]]
                merged = replace(earlier, patch={**earlier.patch, **stop}, retry=False)
                self.out.segment_patches[at[index]] = merged
            else:
                rv = seg.view.resource_version  # a completion written meanwhile wins
                self.patch_segment(SegmentPatch(seg.view, stop, resource_version=rv))
            seg.phase, seg.stopped = SegmentPhase.FAILED, True
            seg.occupies_slot = seg.launchable = False

    # -- the VideoJob's status ----------------------------------------------------------------

    def counters(self) -> dict[str, Any]:
        segs = self.segs.values()
        completed = sum(s.phase is SegmentPhase.COMPLETED for s in segs)
        return {
            "segmentsTotal": self.total,
            "segmentsCompleted": completed,
            "segmentsRunning": sum(s.phase is SegmentPhase.RUNNING for s in segs),
            "segmentsFailed": sum(s.phase is SegmentPhase.FAILED and not s.stopped for s in segs),
            "retries": sum(max(0, s.attempts - 1) for s in segs),
            "progress": format_progress(completed, self.total) if self.total else None,
            "conversion": conversion.summary_wire(
                figures
                for s in segs
                if s.phase is SegmentPhase.COMPLETED
                and (figures := s.conversion or s.view.status.conversion) is not None
            ),
        }

    def eta(self, completed: int) -> str | None:
        status = self.vj.status
        if self.phase is not VideoJobPhase.RUNNING or completed < ETA_MIN_COMPLETED:
            return None
        if completed == status.segments_completed and status.estimated_completion_time:
            return rfc3339(status.estimated_completion_time)  # only moves when work is done
        starts = [s.view.status.start_time for s in self.segs.values() if s.view.status.start_time]
        began = min(starts, default=None) or status.start_time
        if began is None:
            return None
        elapsed = max((self.now - began).total_seconds(), 1.0)
        remaining = max(0, self.total - completed)
        return rfc3339(self.now + timedelta(seconds=remaining * elapsed / completed))

    def message(self, counters: Mapping[str, Any]) -> str:
        if self.failure is not None:
            return self.failure[1]
        match self.phase:
            case VideoJobPhase.SPLITTING:
                return f"splitting the source into {self.spec.segment_seconds}s segments"
            case VideoJobPhase.RUNNING:
                text = (
                    f"{counters['segmentsCompleted']}/{self.total} segments completed, "
                    f"{counters['segmentsRunning']} running"
                )
                return text + (", suspended" if self.spec.suspend else "")
            case VideoJobPhase.ASSEMBLING:
                return f"assembling {self.total} segments into {self.vj.output_uri}"
            case VideoJobPhase.SUCCEEDED:
                return f"converted {self.total} segments into {self.vj.output_uri}"
        return ""

    def conditions(self, message: str) -> list[Condition]:
        current = list(self.vj.status.conditions)
        conds = current
        generation = self.vj.generation
        if self.phase in _TERMINAL:
            reason = self.failure[0] if self.failure else "Succeeded"
            conds = set_condition(
                conds,
                PROGRESSING,
                "False",
                reason,
                message,
                observed_generation=generation,
                now=self.now,
            )
        else:
            conds = set_condition(
                conds,
                PROGRESSING,
                "True",
                self.phase.value,
                message,
                observed_generation=generation,
                now=self.now,
            )
        if self.spec.suspend and self.phase not in _TERMINAL:
            conds = set_condition(
                conds,
                SUSPENDED,
                "True",
                "SuspendRequested",
                "no new segments start while spec.suspend is true",
                observed_generation=generation,
                now=self.now,
            )
        elif find_condition(conds, SUSPENDED) is not None:
            conds = set_condition(
                conds,
                SUSPENDED,
                "False",
                "Resumed",
                "",
                observed_generation=generation,
                now=self.now,
            )
        if self.failure is not None:
            conds = set_condition(
                conds,
                FAILED,
                "True",
                self.failure[0],
                self.failure[1],
                observed_generation=generation,
                now=self.now,
            )
        if self.phase is VideoJobPhase.SUCCEEDED:
            conds = set_condition(
                conds,
                SUCCEEDED,
                "True",
                "Assembled",
                message,
                observed_generation=generation,
                now=self.now,
            )
        return conds

    def status_patch(self) -> Patch | None:
        status = self.vj.status
        # Defaults (zeros) are in the current status too, so unchanged counters patch nothing.
        counters = self.counters()
        desired: dict[str, Any] = {
            "phase": self.phase.value,
            "outputUri": self.vj.output_uri,
            "observedGeneration": self.vj.generation,
            "startTime": rfc3339(status.start_time or self.now),
            **counters,
        }
        if self.phase in _TERMINAL:
            desired["completionTime"] = rfc3339(status.completion_time or self.now)
        if self.seams is not None:
            desired["seams"] = self.seams.to_wire()
        desired["estimatedCompletionTime"] = self.eta(counters["segmentsCompleted"])
        message = self.message(counters)
        desired["message"] = message[: segments.MAX_MESSAGE]
        desired["conditions"] = [c.to_wire() for c in self.conditions(message)]
        current = status.to_wire()
        patch = {k: v for k, v in desired.items() if current.get(k) != v}
        self.phase_events(status.phase)
        return patch or None

    def phase_events(self, old: VideoJobPhase) -> None:
        suspended_before = find_condition(self.vj.status.conditions, SUSPENDED)
        was_suspended = (
            suspended_before is not None and suspended_before.status is ConditionStatus.TRUE
        )
        if self.phase not in _TERMINAL and self.spec.suspend != was_suspended:
            if self.spec.suspend:
                self.out.events.append(Event("Normal", "Suspended", "no new segments start"))
            elif suspended_before is not None:
                self.out.events.append(Event("Normal", "Resumed", "segments start again"))
        if self.phase is old:
            return
        if self.failure is not None:
            self.out.events.append(Event("Warning", self.failure[0], self.failure[1]))
        else:
            self.out.events.append(Event("Normal", self.phase.value, self.message(self.counters())))


def reconcile(snap: Snapshot, fetched: Fetched, config: OperatorConfig) -> Actions:
    """The writes that move one VideoJob towards done, from the state shown."""
    vj = snap.videojob
    if vj.deleting or vj.status.phase is VideoJobPhase.SUCCEEDED:
        return Actions()
    if vj.status.phase is VideoJobPhase.FAILED:
        return _after_failure(snap)
    return _Tick(snap, fetched, config).run()


def _failure_of(status: VideoJobStatus) -> str:
    failed = find_condition(status.conditions, FAILED)
    return (failed.message if failed is not None else "") or status.message or "unknown cause"


def _after_failure(snap: Snapshot) -> Actions:
    """Terminal, but what the failure left must end: inference Jobs stop, and Segments not
    done end Failed (the tick that failed the VideoJob may have died before writing them)."""
    out = Actions()
    now = snap.now.astimezone(UTC).replace(microsecond=0)
    failure = _failure_of(snap.videojob.status)
    for view in sorted(_existing(snap).values(), key=lambda v: v.index):
        active = _observation(snap, view.index).active_attempts
        if active:
            out.cancels.append(Cancel(view, active))
        if view.phase in (SegmentPhase.COMPLETED, SegmentPhase.FAILED):
            continue
        if view.completion is not None:  # its output arrived after all
            patch = segments.completed_patch(view.completion)
            out.segment_patches.append(SegmentPatch(view, patch, completed=view.completion))
        else:
            patch = segments.stopped_patch(VIDEOJOB_FAILED, failure, now)
            rv = view.resource_version
            out.segment_patches.append(SegmentPatch(view, patch, resource_version=rv))
    return out


def invalid_spec_patch(
    status: VideoJobStatus, generation: int, message: str, now: datetime
) -> Patch:
    """A spec the models reject (the CRD should have): fail with the validation message."""
    moment = now.astimezone(UTC).replace(microsecond=0)
    conds = set_condition(
        status.conditions,
        FAILED,
        "True",
        INVALID_SPEC,
        message[: segments.MAX_MESSAGE],
        observed_generation=generation,
        now=moment,
    )
    return {
        "phase": VideoJobPhase.FAILED.value,
        "message": message[: segments.MAX_MESSAGE],
        "completionTime": rfc3339(moment),
        "observedGeneration": generation,
        "conditions": [c.to_wire() for c in conds],
    }
