"""Conversion figures: per segment with its completion, and together on the VideoJob."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

from stereo_operator import conversion, segments
from stereo_operator.reconcile import Fetched, SegmentPatch, reconcile
from stereo_operator.segments import StoredObject
from stereo_operator.views import SegmentView
from stereo_types.segment import (
    CompletionSource,
    SegmentCompletion,
    SegmentConversion,
    SegmentStatus,
)
from tests.operator.factories import (
    CONFIG,
    NOW,
    attempt_job,
    running,
    running_status,
    segment,
    snapshot,
)

MB = 1_000_000


def completion(index: int, at_seconds_before_now: float = 0) -> SegmentCompletion:
    return SegmentCompletion(
        uri=f"file:///ws/films/movie/0000-uid-1111/segments/{index:05d}/output.mp4",
        size=4096,
        event_time=NOW - timedelta(seconds=at_seconds_before_now),
        source=CompletionSource.SEAWEEDFS_WEBHOOK,
        recorded_at=NOW,
    )


def read(view: SegmentView, input_bytes: int | None) -> SegmentView:
    """The view of a segment whose window reads ``input_bytes`` of the source (None: no
    window, a whole-file conversion)."""
    window = view.spec.window
    assert window is not None
    new_window = None if input_bytes is None else window.model_copy(update={"bytes": input_bytes})
    return dataclasses.replace(view, spec=view.spec.model_copy(update={"window": new_window}))


def reported(
    index: int, attempt_started_seconds_ago: float, attempts: int = 1, input_bytes: int = MB
) -> SegmentView:
    view = running(
        index,
        attempts,
        attemptStartTime=NOW - timedelta(seconds=attempt_started_seconds_ago),
        completion=completion(index).to_wire(),
    )
    return read(view, input_bytes)


def test_launch_records_the_attempt_start() -> None:
    patch = segments.launch_patch(SegmentStatus(startTime=NOW), 2, "job-2", NOW)
    assert patch["attemptStartTime"] == "2030-01-01T12:00:00Z"
    assert "startTime" not in patch  # the first attempt's start stays


def test_figures_from_attempt_start_frames_and_input_size() -> None:
    view = reported(0, attempt_started_seconds_ago=8, attempts=2, input_bytes=2 * MB)
    assert view.completion is not None
    # The input is the segment's window of the source: its bytes come from the plan.
    figures = conversion.segment_figures(view, view.completion)
    assert figures == SegmentConversion(
        wall_seconds=8.0,
        frames=48,
        frames_per_second=6.0,
        input_bytes=2 * MB,
        seconds_per_mb=4.0,
        attempts=2,
    )


def test_figures_without_input_size_or_wall_time_leave_those_out() -> None:
    view = read(reported(0, attempt_started_seconds_ago=0), None)
    assert view.completion is not None
    figures = conversion.segment_figures(view, view.completion)
    assert figures is not None
    assert figures.wall_seconds == 0 and figures.frames_per_second is None
    assert figures.input_bytes is None and figures.seconds_per_mb is None


def test_an_old_status_without_attempt_start_uses_the_first_start() -> None:
    view = running(0, completion=completion(0).to_wire())  # startTime one minute ago
    assert view.completion is not None
    figures = conversion.segment_figures(view, view.completion)
    assert figures is not None and figures.wall_seconds == 60.0


def test_no_start_at_all_gives_no_figures() -> None:
    view = segment(0, phase="Running", attempts=1, completion=completion(0).to_wire())
    patch = SegmentPatch(view, {"phase": "Completed"}, completed=view.completion)
    assert conversion.with_figures(patch) == (patch, None)


def test_completion_patch_carries_the_figures_and_the_videojob_sums_them() -> None:
    earlier = segment(
        1,
        phase="Completed",
        attempts=1,
        completion=completion(1, 30).to_wire(),
        conversion={"wallSeconds": 12.0, "frames": 48, "inputBytes": 3 * MB, "attempts": 1},
    )
    snap = snapshot(
        vj_status=running_status(3),
        segments=[reported(0, 4), earlier, running(2)],
        jobs_=[attempt_job(0, state="succeeded"), attempt_job(2)],
    )
    actions = reconcile(snap, Fetched(), CONFIG)
    [sp] = [p for p in actions.segment_patches if p.segment.index == 0]
    assert sp.patch["phase"] == "Completed"
    assert sp.patch["conversion"] == {
        "wallSeconds": 4.0,
        "frames": 48,
        "framesPerSecond": 12.0,
        "inputBytes": 1 * MB,
        "secondsPerMb": 4.0,
        "attempts": 1,
    }
    assert actions.videojob_patch is not None
    assert actions.videojob_patch["conversion"] == {
        "segmentsMeasured": 2,
        "frames": 96,
        "conversionSeconds": 16.0,
        "framesPerSecond": 6.0,
        "secondsPerMb": 4.0,
    }


def test_recording_twice_gives_the_same_figures() -> None:
    snap = snapshot(
        vj_status=running_status(1),
        segments=[reported(0, 7)],
        jobs_=[attempt_job(0, state="succeeded")],
    )
    fetched = Fetched()
    first, second = reconcile(snap, fetched, CONFIG), reconcile(snap, fetched, CONFIG)
    assert first.segment_patches[0].patch == second.segment_patches[0].patch
    assert first.videojob_patch == second.videojob_patch


def test_a_recorded_summary_is_not_written_again() -> None:
    figures = {"wallSeconds": 5.0, "frames": 48, "framesPerSecond": 9.6, "attempts": 1}
    done = segment(0, phase="Completed", attempts=1, conversion=figures)
    summary = conversion.summary_wire([SegmentConversion.model_validate(figures)])
    assert summary == {
        "segmentsMeasured": 1,
        "frames": 48,
        "conversionSeconds": 5.0,
        "framesPerSecond": 9.6,
    }
    snap = snapshot(vj_status=running_status(2, conversion=summary), segments=[done, running(1)])
    actions = reconcile(snap, Fetched(), CONFIG)
    assert "conversion" not in (actions.videojob_patch or {})


def test_a_verified_completion_carries_the_figures_too() -> None:
    checked = read(running(0, attemptStartTime=NOW - timedelta(minutes=4)), 6 * MB)
    snap = snapshot(
        vj_status=running_status(1),
        segments=[checked],
        jobs_=[attempt_job(0, state="succeeded", finished_at=NOW - timedelta(minutes=2))],
    )
    found = StoredObject(uri=checked.spec.output_uri, size=99, updated=NOW - timedelta(minutes=2))
    fetched = Fetched(segment_outputs={0: found})
    [sp] = reconcile(snap, fetched, CONFIG).segment_patches
    assert sp.patch["completion"]["source"] == "reconcile"
    assert sp.patch["conversion"] == {
        "wallSeconds": 120.0,
        "frames": 48,
        "framesPerSecond": 0.4,
        "inputBytes": 6 * MB,
        "secondsPerMb": 20.0,
        "attempts": 1,
    }


def test_no_figures_no_summary() -> None:
    assert conversion.summary([]) is None
