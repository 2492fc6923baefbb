"""What stereoctl prints: rich tables for list and status, and the live progress of a wait."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from rich.console import Group, RenderableType
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn
from rich.table import Table

from stereo_types.segment import SegmentStatus
from stereo_types.videojob import VideoJobStatus

JsonDict = dict[str, Any]


def videojob_status(videojob: JsonDict) -> VideoJobStatus:
    return VideoJobStatus.model_validate(videojob.get("status") or {})


def segment_status(segment: JsonDict) -> SegmentStatus:
    return SegmentStatus.model_validate(segment.get("status") or {})


def _now() -> datetime:
    return datetime.now(UTC)


def duration(seconds: float | None) -> str:
    """'1h02m', '3m05s', '12s', or '-'."""
    if seconds is None:
        return "-"
    total = max(0, round(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


def _between(start: datetime | None, end: datetime | None) -> float | None:
    if start is None:
        return None
    return ((end or _now()) - start).total_seconds()


def _age(timestamp: str) -> str:
    created = datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    return duration((_now() - created).total_seconds())


def time_remaining(status: VideoJobStatus) -> str:
    if status.estimated_completion_time is None:
        return "-"
    return duration(max(timedelta(0), status.estimated_completion_time - _now()).total_seconds())


def videojob_table(videojobs: list[JsonDict]) -> Table:
    table = Table("NAME", "PHASE", "PROGRESS", "FORMAT", "AGE", "SOURCE", box=None, pad_edge=False)
    for vj in videojobs:
        status = videojob_status(vj)
        table.add_row(
            vj["metadata"]["name"],
            status.phase.value,
            status.progress or "-",
            vj["spec"].get("format", "-"),
            _age(vj["metadata"]["creationTimestamp"]),
            vj["spec"]["source"],
        )
    return table


def _summary(videojob: JsonDict) -> Table:
    status = videojob_status(videojob)
    table = Table(show_header=False, box=None, pad_edge=False)
    # No status at all: the operator has not looked at it (the model would say Pending).
    phase = status.phase.value if videojob.get("status") else "- (not picked up by the operator)"
    rows = [
        ("Name", f"{videojob['metadata']['namespace']}/{videojob['metadata']['name']}"),
        ("Phase", phase),
        ("Source", videojob["spec"]["source"]),
        ("Format", videojob["spec"].get("format", "-")),
        ("Segments", _counts(status)),
        ("Retries", str(status.retries)),
        ("Elapsed", duration(_between(status.start_time, status.completion_time))),
        ("Remaining", time_remaining(status)),
        ("Output", status.output_uri or "-"),
        ("Message", status.message or "-"),
    ]
    for key, value in rows:
        table.add_row(f"[bold]{key}[/bold]", value)
    return table


def _counts(status: VideoJobStatus) -> str:
    return (
        f"{status.segments_completed}/{status.segments_total} done, "
        f"{status.segments_running} in flight, {status.segments_failed} failed"
    )


def _conditions(videojob: JsonDict) -> Table:
    table = Table("CONDITION", "STATUS", "REASON", "SINCE", "MESSAGE", box=None, pad_edge=False)
    for condition in videojob_status(videojob).conditions:
        table.add_row(
            condition.type,
            condition.status.value,
            condition.reason,
            duration(_between(condition.last_transition_time, None)) + " ago",
            condition.message,
        )
    return table


def _segments(segments: list[JsonDict]) -> Table:
    table = Table(
        "SEGMENT", "PHASE", "ATTEMPTS", "DURATION", "JOB", "LAST FAILURE", box=None, pad_edge=False
    )
    for segment in segments:
        status = segment_status(segment)
        failure = status.last_failure_reason or ""
        if status.last_failure_message:
            failure = f"{failure}: {status.last_failure_message}"
        table.add_row(
            str(segment["spec"]["index"]),
            status.phase.value,
            str(status.attempts),
            duration(_between(status.start_time, status.completion_time)),
            status.job_name or "-",
            failure or "-",
        )
    return table


def status_view(videojob: JsonDict, segments: list[JsonDict]) -> RenderableType:
    parts: list[RenderableType] = [_summary(videojob)]
    if videojob_status(videojob).conditions:
        parts += ["", _conditions(videojob)]
    parts += ["", _segments(segments) if segments else "No segments yet."]
    return Group(*parts)


class JobProgress:
    """A live bar of a VideoJob: segments done, in flight and failed, and time remaining."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.task: TaskID = progress.add_task("", total=None, extra="")

    @staticmethod
    def columns() -> tuple[Any, ...]:
        return (
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[extra]}"),
        )

    def update(self, videojob: JsonDict) -> None:
        status = videojob_status(videojob)
        extra = (
            f"in flight {status.segments_running}  failed {status.segments_failed}  "
            f"remaining {time_remaining(status)}"
        )
        self.progress.update(
            self.task,
            description=f"{videojob['metadata']['name']} {status.phase.value}",
            completed=status.segments_completed,
            total=status.segments_total or None,
            extra=extra,
        )
