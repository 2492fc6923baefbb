"""The pure decision logic: phases, segment transitions, launches, counters, ETA."""

from __future__ import annotations

from datetime import timedelta

import pytest

from stereo_operator import jobs
from stereo_operator.labels import Role
from stereo_operator.reconcile import (
    BAD_INPUT,
    MODEL_UNAVAILABLE,
    OUTPUT_MISSING,
    PLAN_UNREADABLE,
    SEGMENT_FAILED,
    VIDEOJOB_FAILED,
    Actions,
    Fetched,
    Snapshot,
    StorageNeeds,
    reconcile,
    storage_needs,
)
from stereo_operator.segments import StoredObject
from stereo_types.seams import SeamScore
from stereo_types.segment import CompletionSource, SegmentCompletion
from stereo_types.videojob import VideoJobPhase
from tests.operator.factories import (
    CONFIG,
    NOW,
    REF,
    attempt_job,
    job,
    plan,
    running,
    running_status,
    segment,
    snapshot,
    spec,
    status,
)


def decide(snap: Snapshot, fetched: Fetched | None = None) -> Actions:
    return reconcile(snap, fetched or Fetched(), CONFIG)


def condition(actions: Actions, kind: str) -> dict:
    assert actions.videojob_patch is not None
    conds = actions.videojob_patch["conditions"]
    return next(c for c in conds if c["type"] == kind)


def launched(actions: Actions) -> list[tuple[int, int]]:
    return [(a.segment.index, a.attempt) for a in actions.launches]


# -- Pending, Splitting --------------------------------------------------------------------


def test_new_videojob_creates_the_split_job_and_starts_splitting() -> None:
    actions = decide(snapshot())
    assert [m["metadata"]["name"] for m in actions.create_jobs] == [jobs.split_job_name(REF)]
    patch = actions.videojob_patch
    assert patch is not None
    assert patch["phase"] == "Splitting"
    assert patch["startTime"] == "2030-01-01T12:00:00Z"
    assert patch["outputUri"] == "file:///ws/films/movie/0000-uid-1111/final.mp4"
    assert condition(actions, "Progressing")["reason"] == "Splitting"
    assert [(e.type, e.reason) for e in actions.events] == [("Normal", "Splitting")]


def test_splitting_waits_for_the_split_job_without_writing() -> None:
    snap = snapshot(vj_status=status(phase="Splitting"), jobs_=[job(Role.SPLIT)])
    first = decide(snap)
    assert first.create_jobs == []
    # The first tick's status patch is in place: nothing else to write.
    patched = status(**{**status(phase="Splitting").to_wire(), **(first.videojob_patch or {})})
    again = decide(snapshot(vj_status=patched, jobs_=[job(Role.SPLIT)]))
    assert not again


def test_splitting_recreates_a_missing_split_job_by_the_same_name() -> None:
    actions = decide(snapshot(vj_status=status(phase="Splitting")))
    assert [m["metadata"]["name"] for m in actions.create_jobs] == [jobs.split_job_name(REF)]


def test_split_success_reads_the_plan_then_creates_segments_and_runs() -> None:
    snap = snapshot(vj_status=status(phase="Splitting"), jobs_=[job(Role.SPLIT, state="succeeded")])
    assert storage_needs(snap) == StorageNeeds(plan=True)
    actions = decide(snap, Fetched(plan=plan(3)))
    assert [m["metadata"]["name"] for m in actions.create_segments] == [
        "movie-00000",
        "movie-00001",
        "movie-00002",
    ]
    patch = actions.videojob_patch
    assert patch is not None
    assert patch["phase"] == "Running"
    assert patch["segmentsTotal"] == 3
    assert patch["progress"] == "0/3"
    manifest = actions.create_segments[1]
    assert manifest["metadata"]["ownerReferences"][0]["uid"] == REF.uid
    assert manifest["metadata"]["labels"]["stereo.dev/segment-index"] == "1"
    assert manifest["spec"]["outputUri"].endswith("/segments/00001/output.mp4")


def test_split_success_with_storage_down_waits() -> None:
    snap = snapshot(vj_status=status(phase="Splitting"), jobs_=[job(Role.SPLIT, state="succeeded")])
    actions = decide(snap, Fetched())
    assert actions.create_segments == []
    assert actions.videojob_patch is None or actions.videojob_patch.get("phase") != "Failed"


def test_split_success_with_an_unreadable_plan_fails() -> None:
    snap = snapshot(vj_status=status(phase="Splitting"), jobs_=[job(Role.SPLIT, state="succeeded")])
    actions = decide(snap, Fetched(plan_error="the split plan file:///x is invalid"))
    assert actions.videojob_patch is not None
    assert actions.videojob_patch["phase"] == "Failed"
    assert condition(actions, "Failed")["reason"] == PLAN_UNREADABLE


def test_split_with_bad_input_fails_with_the_pod_message() -> None:
    split = job(
        Role.SPLIT,
        state="failed",
        reason="PodFailurePolicy",
        message="Container main for pod films/x failed with exit code 3",
    )
    snap = snapshot(vj_status=status(phase="Splitting"), jobs_=[split])
    assert storage_needs(snap).failure_details == (split.name,)
    detail = "stereo-infer: error: cannot read file:///in/movie.mp4: no such file"
    actions = decide(snap, Fetched(failure_details={split.name: detail}))
    patch = actions.videojob_patch
    assert patch is not None
    assert patch["phase"] == "Failed"
    assert patch["completionTime"] == "2030-01-01T12:00:00Z"
    assert detail in patch["message"]
    failed = condition(actions, "Failed")
    assert failed["reason"] == BAD_INPUT and detail in failed["message"]
    assert condition(actions, "Progressing")["status"] == "False"
    assert [(e.type, e.reason) for e in actions.events] == [("Warning", BAD_INPUT)]


def test_split_refusing_the_model_fails_with_model_unavailable() -> None:
    split = job(Role.SPLIT, state="failed", reason="PodFailurePolicy", message="exit code 69")
    snap = snapshot(vj_status=status(phase="Splitting"), jobs_=[split])
    refusal = "depth model 'Any_V2_L': weights not found: /models holds no snapshot"
    output = f"loading\nstereo-infer: error [ModelUnavailable]: {refusal}\n"
    actions = decide(snap, Fetched(failure_details={split.name: output}))
    failed = condition(actions, "Failed")
    assert failed["reason"] == MODEL_UNAVAILABLE == "ModelUnavailable"
    image = CONFIG.inference.image
    assert failed["message"] == f"image {image} cannot run this VideoJob: {refusal}"
    assert actions.create_segments == []
    assert [(e.type, e.reason) for e in actions.events] == [("Warning", MODEL_UNAVAILABLE)]
    # The marker counts only on a Job the failure policy failed (exit 3 or 69), not on a
    # crash that happened to print it.
    crashed = job(Role.SPLIT, state="failed", reason="BackoffLimitExceeded", message="crash")
    snap = snapshot(vj_status=status(phase="Splitting"), jobs_=[crashed])
    actions = decide(snap, Fetched(failure_details={crashed.name: output}))
    assert condition(actions, "Failed")["reason"] == "SplitFailed"


def test_segments_are_created_at_most_n_per_tick() -> None:
    config = CONFIG.model_copy(update={"segment_creates_per_tick": 2})
    snap = snapshot(vj_status=running_status(5), segments=[segment(0)], config=config)
    assert storage_needs(snap).plan
    actions = reconcile(snap, Fetched(plan=plan(5)), config)
    assert [m["metadata"]["name"] for m in actions.create_segments] == [
        "movie-00001",
        "movie-00002",
    ]


# -- Launching -------------------------------------------------------------------------------


def test_launches_in_index_order_up_to_parallelism() -> None:
    snap = snapshot(vj_status=running_status(4), segments=[segment(i) for i in range(4)])
    actions = decide(snap)
    assert launched(actions) == [(0, 1), (1, 1)]
    patch = actions.launches[0].patch
    assert patch["phase"] == "Running"
    assert patch["attempts"] == 1
    assert patch["jobName"] == jobs.inference_job_name(REF, 0, 1)
    assert patch["startTime"] == "2030-01-01T12:00:00Z"
    assert actions.videojob_patch is not None
    assert actions.videojob_patch["segmentsRunning"] == 2


def test_running_segments_occupy_slots() -> None:
    segs = [running(0), segment(1), segment(2)]
    snap = snapshot(vj_status=running_status(3), segments=segs, jobs_=[attempt_job(0, 1)])
    assert launched(decide(snap)) == [(1, 1)]


def test_a_finished_job_awaiting_its_completion_frees_its_slot() -> None:
    segs = [running(0), segment(1), segment(2)]
    done = attempt_job(0, 1, state="succeeded", finished_at=NOW - timedelta(seconds=1))
    snap = snapshot(vj_status=running_status(3), segments=segs, jobs_=[done])
    assert launched(decide(snap)) == [(1, 1), (2, 1)]


@pytest.mark.parametrize(
    ("share", "cluster_free", "expected"),
    [(100, 100, 2), (1, 100, 1), (100, 1, 1), (0, 100, 0), (100, 0, 0)],
)
def test_launches_respect_the_fair_share_and_the_cluster_cap(
    share: int, cluster_free: int, expected: int
) -> None:
    snap = snapshot(
        vj_status=running_status(4),
        segments=[segment(i) for i in range(4)],
        share=share,
        cluster_free=cluster_free,
    )
    assert len(decide(snap).launches) == expected


def test_suspend_starts_nothing_and_says_so() -> None:
    snap = snapshot(
        vj_spec=spec(suspend=True),
        vj_status=running_status(2),
        segments=[segment(0), segment(1)],
    )
    actions = decide(snap)
    assert actions.launches == []
    suspended = condition(actions, "Suspended")
    assert suspended["status"] == "True"
    assert ("Normal", "Suspended") in [(e.type, e.reason) for e in actions.events]
    assert "suspended" in (actions.videojob_patch or {})["message"]


def test_resume_starts_again_where_it_left_off() -> None:
    suspended = decide(
        snapshot(
            vj_spec=spec(suspend=True),
            vj_status=running_status(3),
            segments=[segment(0, phase="Completed", attempts=1), segment(1), segment(2)],
        )
    )
    assert suspended.videojob_patch is not None
    st = running_status(3, **{k: v for k, v in suspended.videojob_patch.items() if k != "phase"})
    resumed = decide(
        snapshot(
            vj_status=st,
            segments=[segment(0, phase="Completed", attempts=1), segment(1), segment(2)],
        )
    )
    assert launched(resumed) == [(1, 1), (2, 1)]
    assert condition(resumed, "Suspended")["status"] == "False"
    assert ("Normal", "Resumed") in [(e.type, e.reason) for e in resumed.events]


def test_backoff_holds_a_retry_until_its_time() -> None:
    waiting = segment(0, attempts=1, nextAttemptTime=NOW + timedelta(seconds=5))
    due = segment(1, attempts=2, nextAttemptTime=NOW - timedelta(seconds=1))
    actions = decide(snapshot(vj_status=running_status(2), segments=[waiting, due]))
    assert launched(actions) == [(1, 3)]
    assert actions.launches[0].patch["nextAttemptTime"] is None


# -- Attempt outcomes --------------------------------------------------------------------------


def test_failed_attempt_is_retried_with_exponential_backoff() -> None:
    failed = attempt_job(0, 2, state="failed", finished_at=NOW - timedelta(seconds=3))
    snap = snapshot(vj_status=running_status(1), segments=[running(0, 2)], jobs_=[failed])
    assert storage_needs(snap).failure_details == (failed.name,)
    actions = decide(snap, Fetched(failure_details={failed.name: "ffmpeg: disk full"}))
    [sp] = actions.segment_patches
    assert sp.retry
    # backoffSeconds 10 * 2**(2-1) from when the attempt finished.
    assert sp.patch == {
        "lastFailureReason": "JobFailed",
        "lastFailureMessage": "ffmpeg: disk full",
        "phase": "Pending",
        "nextAttemptTime": "2030-01-01T12:00:17Z",
    }
    assert actions.launches == []
    assert [(e.reason, e.segment.index if e.segment else None) for e in actions.events] == [
        ("AttemptFailed", 0)
    ]


def test_deciding_a_failure_twice_gives_the_same_patch() -> None:
    failed = attempt_job(0, 1, state="failed")
    snap = snapshot(vj_status=running_status(1), segments=[running(0)], jobs_=[failed])
    first = decide(snap, Fetched())
    later = decide(snapshot(vj_status=running_status(1), segments=[running(0)], jobs_=[failed],
                            now=NOW + timedelta(seconds=1)), Fetched())  # fmt: skip
    assert first.segment_patches[0].patch == later.segment_patches[0].patch


def test_failure_after_the_last_retry_fails_the_segment_and_the_videojob() -> None:
    segs = [running(0, 3), running(1, 1)]
    jobs_ = [attempt_job(0, 3, state="failed"), attempt_job(1, 1)]
    actions = decide(snapshot(vj_status=running_status(3), segments=segs, jobs_=jobs_))
    seg_patch = next(sp for sp in actions.segment_patches if sp.segment.index == 0)
    assert seg_patch.patch["phase"] == "Failed"
    assert not seg_patch.retry
    patch = actions.videojob_patch
    assert patch is not None
    assert patch["phase"] == "Failed"
    assert patch["segmentsFailed"] == 1
    assert "segment 0 failed after 3 attempt(s)" in patch["message"]
    assert condition(actions, "Failed")["reason"] == SEGMENT_FAILED
    # No new starts, and the running Job of segment 1 goes.
    assert actions.launches == []
    assert [(c.segment.index, set(c.attempts)) for c in actions.cancels] == [(1, {1})]
    assert ("Warning", SEGMENT_FAILED) in [(e.type, e.reason) for e in actions.events]


def test_bad_input_fails_the_segment_at_once() -> None:
    bad = attempt_job(0, 1, state="failed", reason="PodFailurePolicy", message="exit code 3")
    actions = decide(snapshot(vj_status=running_status(1), segments=[running(0)], jobs_=[bad]))
    [sp] = actions.segment_patches
    assert sp.patch["phase"] == "Failed"
    assert sp.patch["lastFailureReason"] == "BadInput"
    assert (actions.videojob_patch or {})["phase"] == "Failed"


def test_storage_event_completes_the_segment() -> None:
    completion = SegmentCompletion(
        uri="file:///ws/x/output.mp4",
        size=10,
        event_time=NOW - timedelta(seconds=2),
        source=CompletionSource.SQS,
        recorded_at=NOW - timedelta(seconds=1),
    )
    seg = running(0, completion=completion.to_wire())
    actions = decide(
        snapshot(vj_status=running_status(2), segments=[seg, segment(1, phase="Completed")])
    )
    [sp] = actions.segment_patches
    assert sp.patch["phase"] == "Completed"
    assert sp.patch["completionTime"] == "2030-01-01T11:59:58Z"
    assert sp.completed == completion
    assert sp.resource_version is None
    assert (actions.videojob_patch or {})["phase"] == "Assembling"


def test_a_succeeded_job_is_not_a_completion_within_the_grace_period() -> None:
    done = attempt_job(0, 1, state="succeeded", finished_at=NOW - timedelta(seconds=2))
    snap = snapshot(vj_status=running_status(1), segments=[running(0)], jobs_=[done])
    assert storage_needs(snap).segment_outputs == ()
    actions = decide(snap)
    assert actions.segment_patches == []


def test_after_the_grace_period_a_present_output_is_recorded_as_a_completion() -> None:
    done = attempt_job(0, 1, state="succeeded", finished_at=NOW - timedelta(seconds=6))
    seg = running(0)
    snap = snapshot(vj_status=running_status(1), segments=[seg], jobs_=[done])
    assert storage_needs(snap).segment_outputs == ((0, seg.spec.output_uri),)
    found = StoredObject(seg.spec.output_uri, 1234, etag="e", generation=7, updated=NOW)
    actions = decide(snap, Fetched(segment_outputs={0: found}))
    [sp] = actions.segment_patches
    assert sp.resource_version == seg.resource_version
    assert sp.patch["phase"] == "Completed"
    assert sp.patch["completion"]["source"] == "reconcile"
    assert sp.patch["completion"]["size"] == 1234
    assert sp.completed is not None and sp.completed.source is CompletionSource.RECONCILE


def test_after_the_grace_period_a_missing_output_fails_the_attempt() -> None:
    done = attempt_job(0, 1, state="succeeded", finished_at=NOW - timedelta(seconds=6))
    snap = snapshot(vj_status=running_status(1), segments=[running(0)], jobs_=[done])
    actions = decide(snap, Fetched(segment_outputs={0: None}))
    [sp] = actions.segment_patches
    assert sp.patch["lastFailureReason"] == OUTPUT_MISSING
    assert sp.patch["phase"] == "Pending"
    assert sp.retry


def test_storage_down_during_the_check_decides_nothing() -> None:
    done = attempt_job(0, 1, state="succeeded", finished_at=NOW - timedelta(seconds=6))
    snap = snapshot(vj_status=running_status(1), segments=[running(0)], jobs_=[done])
    assert decide(snap, Fetched()).segment_patches == []


def test_a_job_the_status_does_not_know_is_adopted_not_duplicated() -> None:
    # The operator died after creating attempt 2's Job and before recording it.
    seg = segment(0, phase="Pending", attempts=1, nextAttemptTime=NOW - timedelta(seconds=1))
    snap = snapshot(
        vj_status=running_status(1),
        segments=[seg],
        jobs_=[attempt_job(0, 1, state="failed"), attempt_job(0, 2)],
    )
    actions = decide(snap)
    assert actions.launches == []
    [sp] = actions.segment_patches
    assert sp.patch["attempts"] == 2
    assert sp.patch["jobName"] == jobs.inference_job_name(REF, 0, 2)


def test_a_vanished_job_of_a_running_attempt_is_created_again_by_name() -> None:
    actions = decide(snapshot(vj_status=running_status(1), segments=[running(0, 2)]))
    assert [(r.segment.index, r.attempt) for r in actions.resubmits] == [(0, 2)]
    assert actions.launches == []


def test_stale_attempts_are_cancelled() -> None:
    segs = [running(0, 2), segment(1, phase="Completed", attempts=1)]
    jobs_ = [attempt_job(0, 1), attempt_job(0, 2), attempt_job(1, 1)]
    actions = decide(snapshot(vj_status=running_status(2), segments=segs, jobs_=jobs_))
    assert sorted((c.segment.index, tuple(c.attempts)) for c in actions.cancels) == [
        (0, (1,)),
        (1, (1,)),
    ]


# -- Assembling, done ------------------------------------------------------------------------


def test_all_segments_completed_starts_assembly() -> None:
    segs = [segment(i, phase="Completed", attempts=1) for i in range(3)]
    actions = decide(snapshot(vj_status=running_status(3), segments=segs))
    assert [m["metadata"]["name"] for m in actions.create_jobs] == [jobs.assemble_job_name(REF)]
    patch = actions.videojob_patch
    assert patch is not None
    assert patch["phase"] == "Assembling"
    assert patch["segmentsCompleted"] == 3
    assert patch["progress"] == "3/3"


def test_not_all_segments_created_is_not_done() -> None:
    segs = [segment(i, phase="Completed", attempts=1) for i in range(2)]
    actions = decide(snapshot(vj_status=running_status(3), segments=segs), Fetched(plan=plan(3)))
    assert actions.create_jobs == []
    assert len(actions.create_segments) == 1


def test_assembly_success_with_the_output_present_succeeds() -> None:
    snap = snapshot(
        vj_status=running_status(2, phase="Assembling"),
        segments=[segment(i, phase="Completed", attempts=1) for i in range(2)],
        jobs_=[job(Role.ASSEMBLE, state="succeeded")],
    )
    output = snap.videojob.output_uri
    assert storage_needs(snap).final_output == output
    actions = decide(snap, Fetched(final_output=StoredObject(output, 99), final_checked=True))
    patch = actions.videojob_patch
    assert patch is not None
    assert patch["phase"] == "Succeeded"
    assert patch["completionTime"] == "2030-01-01T12:00:00Z"
    assert condition(actions, "Succeeded")["status"] == "True"
    assert condition(actions, "Progressing")["status"] == "False"
    assert ("Normal", "Succeeded") in [(e.type, e.reason) for e in actions.events]
    assert "seams" not in patch  # no engine wrote depth traces


def test_assembly_success_carries_the_seam_score_into_the_status() -> None:
    snap = snapshot(
        vj_status=running_status(2, phase="Assembling"),
        segments=[segment(i, phase="Completed", attempts=1) for i in range(2)],
        jobs_=[job(Role.ASSEMBLE, state="succeeded")],
    )
    needs = storage_needs(snap)
    assert needs.seams is not None and needs.seams.endswith("/seams.json")
    assert needs.seams.rsplit("/", 1)[0] == snap.videojob.output_uri.rsplit("/", 1)[0]
    score = SeamScore(score=1.5, worst_segment=1, median_score=1.5, seams=1)
    found = StoredObject(snap.videojob.output_uri, 99)
    actions = decide(snap, Fetched(final_output=found, final_checked=True, seams=score))
    patch = actions.videojob_patch
    assert patch is not None and patch["phase"] == "Succeeded"
    assert patch["seams"] == {"score": 1.5, "worstSegment": 1, "medianScore": 1.5, "seams": 1}


def test_assembly_success_without_output_fails() -> None:
    snap = snapshot(
        vj_status=running_status(1, phase="Assembling"),
        segments=[segment(0, phase="Completed", attempts=1)],
        jobs_=[job(Role.ASSEMBLE, state="succeeded")],
    )
    waiting = decide(snap, Fetched())
    assert (waiting.videojob_patch or {}).get("phase") != "Failed"
    actions = decide(snap, Fetched(final_checked=True))
    assert condition(actions, "Failed")["reason"] == OUTPUT_MISSING


def test_assembly_failure_fails() -> None:
    snap = snapshot(
        vj_status=running_status(1, phase="Assembling"),
        segments=[segment(0, phase="Completed", attempts=1)],
        jobs_=[job(Role.ASSEMBLE, state="failed")],
    )
    actions = decide(snap)
    assert (actions.videojob_patch or {})["phase"] == "Failed"


# -- Terminal, deleting, backends ----------------------------------------------------------------


def test_succeeded_and_deleting_videojobs_do_nothing() -> None:
    segs = [segment(0)]
    assert not decide(snapshot(vj_status=running_status(1, phase="Succeeded"), segments=segs))
    assert not decide(snapshot(vj_status=running_status(1), segments=segs, deleting=True))


def test_a_failed_videojob_stops_its_jobs_and_ends_its_unfinished_segments() -> None:
    failure = "segment 2 failed after 1 attempt(s): BadInput: exit code 3"
    completion = SegmentCompletion(
        uri="file:///ws/out.mp4", size=1, event_time=NOW, source=CompletionSource.SQS,
        recorded_at=NOW,
    )  # fmt: skip
    segs = [
        running(0, rv="7"),
        segment(1),
        segment(2, phase="Failed", attempts=1),
        segment(3, phase="Completed", attempts=1),
        running(4, completion=completion),
    ]
    snap = snapshot(
        vj_status=running_status(5, phase="Failed", message=failure),
        segments=segs,
        jobs_=[attempt_job(0, 1)],
    )
    actions = decide(snap)
    assert [(c.segment.index, set(c.attempts)) for c in actions.cancels] == [(0, {1})]
    assert actions.launches == [] and actions.videojob_patch is None
    patches = {sp.segment.index: sp for sp in actions.segment_patches}
    assert sorted(patches) == [0, 1, 4]
    for index in (0, 1):
        stop = patches[index]
        assert stop.patch["phase"] == "Failed"
        assert stop.patch["lastFailureReason"] == VIDEOJOB_FAILED
        assert stop.patch["lastFailureMessage"] == f"stopped because the VideoJob failed: {failure}"
        assert stop.resource_version == segs[index].resource_version  # a completion wins
    assert patches[4].patch["phase"] == "Completed"  # its output came after all
    # Idempotent: the same state decides the same writes; ended segments decide none.
    assert decide(snap).segment_patches == actions.segment_patches
    ended = [segment(i, phase="Failed", attempts=1) for i in range(3)]
    again = decide(snapshot(vj_status=running_status(3, phase="Failed", message=failure),
                            segments=ended))  # fmt: skip
    assert not again


def test_the_failing_tick_ends_the_other_segments_in_one_patch_each() -> None:
    # Segment 0 fails for good; segment 1's attempt failed too (it would have been retried)
    # and segment 2 waits: both end Failed, segment 1 in a single patch.
    segs = [running(0, 2), running(1, 1), segment(2)]
    jobs_ = [attempt_job(0, 2, state="failed"), attempt_job(1, 1, state="failed")]
    actions = decide(
        snapshot(vj_spec=spec(maxRetries=1), vj_status=running_status(3), segments=segs,
                 jobs_=jobs_)
    )  # fmt: skip
    by_index = [sp.segment.index for sp in actions.segment_patches]
    assert sorted(by_index) == [0, 1, 2]
    patches = {sp.segment.index: sp for sp in actions.segment_patches}
    assert patches[0].patch["lastFailureReason"] == "JobFailed"
    for index in (1, 2):
        assert patches[index].patch["phase"] == "Failed"
        assert patches[index].patch["lastFailureReason"] == VIDEOJOB_FAILED
        assert "segment 0 failed after 2 attempt(s)" in patches[index].patch["lastFailureMessage"]
        assert "nextAttemptTime" in patches[index].patch and not patches[index].retry
    patch = actions.videojob_patch
    assert patch is not None
    # The stopped segments are neither running nor counted as failed in their own right.
    assert (patch["segmentsFailed"], patch.get("segmentsRunning", 0)) == (1, 0)
    assert actions.launches == [] and actions.resubmits == []


@pytest.mark.parametrize("kind", ["http", "managed"])
def test_http_and_managed_backends_are_available(kind: str) -> None:
    extra = (
        {"http": {"url": "http://infer:8080"}}
        if kind == "http"
        else {"managed": {"endpointName": "e", "region": "eu-west-1"}}
    )
    vj_spec = spec(backend={"type": kind, "engine": "builtin", **extra})
    actions = decide(snapshot(vj_spec=vj_spec))
    patch = actions.videojob_patch
    assert patch is not None
    assert patch["phase"] == "Splitting"
    assert [j["metadata"]["labels"]["stereo.dev/role"] for j in actions.create_jobs] == ["split"]


# -- Counters, ETA -----------------------------------------------------------------------------


def test_counters_progress_and_retries() -> None:
    segs = [
        segment(0, phase="Completed", attempts=2),
        running(1, 3),
        segment(2, phase="Pending", attempts=1, nextAttemptTime=NOW + timedelta(minutes=1)),
        segment(3),
    ]
    actions = decide(
        snapshot(vj_status=running_status(4), segments=segs, jobs_=[attempt_job(1, 3)], share=1)
    )
    patch = actions.videojob_patch
    assert patch is not None
    assert patch["segmentsCompleted"] == 1
    assert patch["segmentsRunning"] == 1
    assert patch["retries"] == 1 + 2
    assert patch["progress"] == "1/4"
    assert patch["message"] == "1/4 segments completed, 1 running"
    assert "estimatedCompletionTime" not in patch


def test_eta_appears_after_three_completions_and_moves_only_with_progress() -> None:
    start = NOW - timedelta(seconds=300)
    segs = [segment(i, phase="Completed", attempts=1, startTime=start) for i in range(3)] + [
        segment(i) for i in range(3, 6)
    ]
    actions = decide(snapshot(vj_status=running_status(6), segments=segs, share=0))
    patch = actions.videojob_patch
    assert patch is not None
    # 3 done in 300 s, 3 to go: 300 s more.
    assert patch["estimatedCompletionTime"] == "2030-01-01T12:05:00Z"
    settled = running_status(6, **{k: v for k, v in patch.items() if k != "phase"})
    later = decide(
        snapshot(vj_status=settled, segments=segs, share=0, now=NOW + timedelta(seconds=30))
    )
    assert later.videojob_patch is None


def test_same_state_twice_decides_the_same_launches() -> None:
    snap = snapshot(vj_status=running_status(5), segments=[segment(i) for i in range(5)])
    assert launched(decide(snap)) == launched(decide(snap))


def test_phase_stays_pending_free_of_counters_before_the_split() -> None:
    actions = decide(snapshot())
    patch = actions.videojob_patch or {}
    assert "segmentsTotal" not in patch and "progress" not in patch
    assert VideoJobPhase(patch["phase"]) is VideoJobPhase.SPLITTING


def test_counters_stay_right_after_the_running_phase() -> None:
    segs = [segment(i, phase="Completed", attempts=1 + (i == 1)) for i in range(3)]
    snap = snapshot(
        vj_status=running_status(3, phase="Assembling"),
        segments=segs,
        jobs_=[job(Role.ASSEMBLE, state="succeeded")],
    )
    output = snap.videojob.output_uri
    actions = decide(snap, Fetched(final_output=StoredObject(output, 9), final_checked=True))
    patch = actions.videojob_patch or {}
    assert patch["phase"] == "Succeeded"
    assert patch["segmentsCompleted"] == 3
    assert patch["progress"] == "3/3"
    assert patch["retries"] == 1
