"""A self-contained HTML report of one VideoJob, for people who would rather look than read.

One page, inline CSS and SVG, no script and nothing fetched: a header (phase, format, source,
output, start, end, wall time), a timeline with one bar per inference attempt (coloured by
outcome, so retries show as red bars followed by another bar on the same row), a table of
the segments, and a histogram of segment durations.

Attempt times come from the attempts' Jobs (labelled with segment index and attempt number)
while they exist; once a Job is gone (ttlSecondsAfterFinished), a single-attempt segment's
own start and completion times stand for its attempt, and the times of an earlier attempt of
a retried segment are unknown: it is counted in the table, not drawn.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from kubernetes import client

from stereo_types import labels
from stereo_types.names import GROUP, SEGMENT_PLURAL, VERSION, VIDEOJOB_PLURAL
from stereo_types.segment import SegmentPhase, SegmentSpec, SegmentStatus
from stereo_types.videojob import VideoJobSpec, VideoJobStatus

JsonDict = dict[str, Any]


TIMELINE_WIDTH = 900
LABEL_WIDTH = 70
# Room right of the plot for the last tick's label.
PLOT_RIGHT = TIMELINE_WIDTH - 30
ROW_HEIGHT = 16
AXIS_HEIGHT = 24
HISTOGRAM_HEIGHT = 160
MAX_BINS = 20


class Outcome(StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    RUNNING = "running"
    UNKNOWN = "unknown"


COLOURS = {
    Outcome.SUCCEEDED: "#2e9e5b",
    Outcome.FAILED: "#d64541",
    Outcome.RUNNING: "#3b7dd8",
    Outcome.UNKNOWN: "#9aa0a6",
}


@dataclass(frozen=True)
class Attempt:
    segment: int
    number: int
    outcome: Outcome
    start: datetime | None
    end: datetime | None

    @property
    def seconds(self) -> float | None:
        if self.start is None or self.end is None:
            return None
        return (self.end - self.start).total_seconds()


@dataclass(frozen=True)
class SegmentRow:
    index: int
    spec: SegmentSpec
    status: SegmentStatus
    attempts: list[Attempt]
    end: datetime | None

    @property
    def seconds(self) -> float | None:
        """From the first attempt's start to completion (retries and backoff included)."""
        if self.status.start_time is None or self.end is None:
            return None
        return (self.end - self.status.start_time).total_seconds()


@dataclass(frozen=True)
class Window:
    """The span the timeline covers."""

    start: datetime
    end: datetime

    @property
    def seconds(self) -> float:
        return max((self.end - self.start).total_seconds(), 1e-3)

    def x(self, moment: datetime) -> float:
        fraction = (moment - self.start).total_seconds() / self.seconds
        return LABEL_WIDTH + (PLOT_RIGHT - LABEL_WIDTH) * min(max(fraction, 0.0), 1.0)


# ---------------------------------------------------------------------------------------------
# Reading the objects


def _parse_time(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def _job_outcome(job: JsonDict) -> tuple[Outcome, datetime | None]:
    """A Job's outcome and when it ended, from its conditions."""
    status = job.get("status") or {}
    for condition in status.get("conditions") or []:
        if condition.get("status") != "True":
            continue
        ended = _parse_time(condition.get("lastTransitionTime"))
        if condition.get("type") == "Complete":
            return Outcome.SUCCEEDED, _parse_time(status.get("completionTime")) or ended
        if condition.get("type") == "Failed":
            return Outcome.FAILED, ended
    return Outcome.RUNNING, None


def _jobs_by_attempt(jobs: Iterable[JsonDict], uid: str) -> dict[tuple[int, int], JsonDict]:
    """The VideoJob's inference Jobs by (segment index, attempt)."""
    found = {}
    for job in jobs:
        tags = (job.get("metadata") or {}).get("labels") or {}
        if tags.get(labels.VIDEOJOB_UID) != uid or tags.get(labels.ROLE) != labels.Role.INFERENCE:
            continue
        index, attempt = tags.get(labels.SEGMENT_INDEX, ""), tags.get(labels.ATTEMPT, "")
        if index.isdigit() and attempt.isdigit():
            found[int(index), int(attempt)] = job
    return found


def _attempts(
    index: int, status: SegmentStatus, jobs: dict[tuple[int, int], JsonDict], now: datetime
) -> list[Attempt]:
    attempts = []
    for number in range(1, status.attempts + 1):
        job = jobs.get((index, number))
        if job is not None:
            outcome, end = _job_outcome(job)
            job_status = job.get("status") or {}
            start = _parse_time(job_status.get("startTime")) or _parse_time(
                (job.get("metadata") or {}).get("creationTimestamp")
            )
            attempts.append(Attempt(index, number, outcome, start, end or now))
        else:
            attempts.append(_attempt_without_job(index, number, status, now))
    return attempts


def _attempt_without_job(index: int, number: int, status: SegmentStatus, now: datetime) -> Attempt:
    if number < status.attempts:
        # A later attempt exists, so this one failed (or was lost); its times are gone.
        return Attempt(index, number, Outcome.FAILED, None, None)
    outcome = {
        SegmentPhase.COMPLETED: Outcome.SUCCEEDED,
        SegmentPhase.FAILED: Outcome.FAILED,
        SegmentPhase.RUNNING: Outcome.RUNNING,
    }.get(status.phase, Outcome.UNKNOWN)
    if number > 1:
        return Attempt(index, number, outcome, None, None)
    # The only attempt spans the segment's own start and completion.
    end = status.completion_time or (now if outcome is Outcome.RUNNING else None)
    return Attempt(index, number, outcome, status.start_time, end)


def _rows(
    uid: str, segments: Sequence[JsonDict], jobs: Iterable[JsonDict], now: datetime
) -> list[SegmentRow]:
    rows = []
    parsed = [
        (SegmentSpec.model_validate(s["spec"]), SegmentStatus.model_validate(s.get("status") or {}))
        for s in segments
    ]
    by_attempt = _jobs_by_attempt(jobs, uid)
    for spec, status in sorted(parsed, key=lambda pair: pair[0].index):
        attempts = _attempts(spec.index, status, by_attempt, now)
        end = status.completion_time
        if end is None and status.phase in (SegmentPhase.RUNNING, SegmentPhase.PENDING):
            end = now if status.start_time is not None else None
        rows.append(SegmentRow(spec.index, spec, status, attempts, end))
    return rows


# ---------------------------------------------------------------------------------------------
# Rendering


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _when(moment: datetime | None) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if moment else "-"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m {rest:02d}s" if hours else f"{minutes}m {rest:02d}s"


def render_report(
    videojob: JsonDict,
    segments: Sequence[JsonDict],
    jobs: Iterable[JsonDict] = (),
    *,
    now: datetime | None = None,
) -> str:
    """The HTML page for a VideoJob and its Segments (and inference Jobs, for attempt times).

    Objects are in the API's JSON shape (camelCase), as the Kubernetes API returns them;
    ``now`` (default: the current time) ends the bars of attempts still running.
    """
    now = now or datetime.now(UTC)
    meta = videojob.get("metadata") or {}
    spec = VideoJobSpec.model_validate(videojob["spec"])
    status = VideoJobStatus.model_validate(videojob.get("status") or {})
    rows = _rows(str(meta.get("uid", "")), segments, jobs, now)
    title = f"VideoJob {meta.get('namespace', '')}/{meta.get('name', '')}"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{_e(title)}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>{_e(title)}</h1>",
        _header(spec, status, rows, now),
        "<h2>Segments over time</h2>",
        _timeline(status, rows),
        "<h2>Segments</h2>",
        _table(rows),
        "<h2>Segment durations</h2>",
        "<p>From a segment's first attempt to its output in storage, retries included.</p>",
        _histogram([r.seconds for r in rows if r.seconds is not None]),
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"


_CSS = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #222; }
h1 { font-size: 20px; } h2 { font-size: 16px; margin-top: 28px; }
dl.header { display: grid; grid-template-columns: max-content auto; gap: 2px 16px; }
dl.header dt { font-weight: 600; } dl.header dd { margin: 0; word-break: break-all; }
table { border-collapse: collapse; } td, th { padding: 2px 10px; border-bottom: 1px solid #ddd; }
th { text-align: left; } td.num { text-align: right; }
.legend span { display: inline-block; margin-right: 14px; }
.legend i { display: inline-block; width: 10px; height: 10px; margin-right: 4px; }
svg text { font: 11px system-ui, sans-serif; fill: #444; }
.phase-Succeeded { color: #2e9e5b; } .phase-Failed { color: #d64541; }
""".strip()


def _header(
    spec: VideoJobSpec, status: VideoJobStatus, rows: list[SegmentRow], now: datetime
) -> str:
    end = status.completion_time
    wall = ((end or now) - status.start_time).total_seconds() if status.start_time else None
    fields = [
        ("Phase", f'<span class="phase-{_e(status.phase)}">{_e(status.phase)}</span>'),
        ("Message", _e(status.message or "-")),
        ("Format", _e(spec.format)),
        ("Source", _e(spec.source)),
        ("Output", _e(status.output_uri or spec.output.uri or "-")),
        ("Started", _e(_when(status.start_time))),
        ("Finished", _e(_when(end))),
        ("Wall time", _e(_duration(wall) + ("" if end or wall is None else " (so far)"))),
        (
            "Segments",
            _e(
                f"{status.segments_completed} of {status.segments_total} completed,"
                f" {status.segments_failed} failed, {status.retries} retries"
                f" ({sum(len(r.attempts) for r in rows)} attempts)"
            ),
        ),
        ("Seams", _e(_seams(status))),
    ]
    items = "".join(f"<dt>{name}</dt><dd>{value}</dd>" for name, value in fields)
    return f'<dl class="header">{items}</dl>'


def _seams(status: VideoJobStatus) -> str:
    seams = status.seams
    if seams is None:
        return "not measured (the engine reports no depth traces)"
    return (
        f"score {seams.score} at segment {seams.worst_segment}, median {seams.median_score}"
        f" over {seams.seams} seams (1: a seam moves the depth no more than a frame does)"
    )


def _window(status: VideoJobStatus, rows: list[SegmentRow]) -> Window | None:
    starts = [a.start for r in rows for a in r.attempts if a.start is not None]
    ends = [a.end for r in rows for a in r.attempts if a.end is not None]
    if status.start_time is not None:
        starts.append(status.start_time)
    if status.completion_time is not None:
        ends.append(status.completion_time)
    if not starts:
        return None
    return Window(min(starts), max([*ends, min(starts)]))


def _timeline(status: VideoJobStatus, rows: list[SegmentRow]) -> str:
    window = _window(status, rows)
    if window is None or not rows:
        return "<p>No segment has started yet.</p>"
    height = AXIS_HEIGHT + ROW_HEIGHT * len(rows)
    shapes = [_axis(window, height)]
    undrawn = 0
    for row_number, row in enumerate(rows):
        y = AXIS_HEIGHT + row_number * ROW_HEIGHT
        shapes.append(
            f'<text x="{LABEL_WIDTH - 6}" y="{y + ROW_HEIGHT - 4}"'
            f' text-anchor="end">{_e(row.index)}</text>'
        )
        for attempt in row.attempts:
            if attempt.start is None or attempt.end is None:
                undrawn += 1
                continue
            shapes.append(_bar(window, attempt, y, row.status))
    legend = "".join(
        f'<span><i style="background:{colour}"></i>{_e(outcome)}</span>'
        for outcome, colour in COLOURS.items()
    )
    note = (
        f"<p>{undrawn} attempt(s) without a timing record (their Jobs are gone):"
        " counted in the table, not drawn.</p>"
        if undrawn
        else ""
    )
    svg = (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="timeline" width="{TIMELINE_WIDTH}"'
        f' height="{height}" viewBox="0 0 {TIMELINE_WIDTH} {height}">{"".join(shapes)}</svg>'
    )
    return f'<div class="legend">{legend}</div>{svg}{note}'


def _bar(window: Window, attempt: Attempt, y: int, status: SegmentStatus) -> str:
    assert attempt.start is not None and attempt.end is not None
    x0, x1 = window.x(attempt.start), window.x(attempt.end)
    tip = (
        f"segment {attempt.segment}, attempt {attempt.number}: {attempt.outcome},"
        f" {_duration(attempt.seconds)}"
    )
    if attempt.outcome is Outcome.FAILED and attempt.number == status.attempts:
        tip += f" ({status.last_failure_reason or 'no reason recorded'})"
    return (
        f'<rect class="attempt {attempt.outcome}" data-segment="{attempt.segment}"'
        f' data-attempt="{attempt.number}" x="{x0:.1f}" y="{y + 2}"'
        f' width="{max(x1 - x0, 1.0):.1f}" height="{ROW_HEIGHT - 4}"'
        f' fill="{COLOURS[attempt.outcome]}"><title>{_e(tip)}</title></rect>'
    )


def _tick_step(seconds: float) -> float:
    """A round step giving 4 to 10 ticks over ``seconds``."""
    for step in (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400):
        if seconds / step <= 10:
            return step
    return 86400.0


def _tick_label(seconds: float) -> str:
    return f"{seconds:g} s" if seconds < 60 else _duration(seconds)


def _axis(window: Window, height: int) -> str:
    step = _tick_step(window.seconds)
    ticks = []
    for i in range(int(window.seconds // step) + 1):
        x = LABEL_WIDTH + (PLOT_RIGHT - LABEL_WIDTH) * (i * step / window.seconds)
        ticks.append(
            f'<line x1="{x:.1f}" y1="{AXIS_HEIGHT - 6}" x2="{x:.1f}" y2="{height}"'
            ' stroke="#e3e3e3"/>'
            f'<text x="{x:.1f}" y="{AXIS_HEIGHT - 10}" text-anchor="middle">'
            f"{_e(_tick_label(i * step))}</text>"
        )
    return "".join(ticks)


def _table(rows: list[SegmentRow]) -> str:
    head = (
        "<tr><th>Segment</th><th>Phase</th><th>Attempts</th><th>Duration</th>"
        "<th>Completion source</th><th>Last failure</th></tr>"
    )
    body = []
    for row in rows:
        status = row.status
        failure = status.last_failure_reason or ""
        message = status.last_failure_message
        title = f' title="{_e(message)}"' if message else ""
        body.append(
            "<tr>"
            f'<td class="num">{_e(row.index)}</td>'
            f"<td>{_e(status.phase)}</td>"
            f'<td class="num">{_e(status.attempts)}</td>'
            f'<td class="num">{_e(_duration(row.seconds))}</td>'
            f"<td>{_e(status.completion.source if status.completion else '-')}</td>"
            f"<td{title}>{_e(failure or '-')}</td>"
            "</tr>"
        )
    return f'<table class="segments">{head}{"".join(body)}</table>'


def _histogram(durations: list[float]) -> str:
    if not durations:
        return "<p>No segment has a duration yet.</p>"
    low, high = min(durations), max(durations)
    bins = 1 if high - low < 1e-6 else min(MAX_BINS, len(durations))
    width = (high - low) / bins if bins > 1 else 1.0
    counts = [0] * bins
    for value in durations:
        counts[min(bins - 1, int((value - low) / width)) if bins > 1 else 0] += 1
    plot_w, plot_h = PLOT_RIGHT - LABEL_WIDTH, HISTOGRAM_HEIGHT - 2 * AXIS_HEIGHT
    bar_w = plot_w / bins
    tallest = max(counts)
    shapes = []
    for i, count in enumerate(counts):
        h = plot_h * count / tallest
        x = LABEL_WIDTH + i * bar_w
        lo = low + i * width
        span = f"{_duration(lo)} to {_duration(lo + width)}" if bins > 1 else _duration(low)
        shapes.append(
            f'<rect class="bin" x="{x + 1:.1f}" y="{AXIS_HEIGHT + plot_h - h:.1f}"'
            f' width="{max(bar_w - 2, 1):.1f}" height="{h:.1f}" fill="#3b7dd8">'
            f"<title>{_e(f'{count} segment(s): {span}')}</title></rect>"
            f'<text x="{x + bar_w / 2:.1f}" y="{AXIS_HEIGHT + plot_h - h - 3:.1f}"'
            f' text-anchor="middle">{count}</text>'
        )
    labels = (
        f'<text x="{LABEL_WIDTH}" y="{HISTOGRAM_HEIGHT - 6}">{_e(_duration(low))}</text>'
        f'<text x="{PLOT_RIGHT}" y="{HISTOGRAM_HEIGHT - 6}" text-anchor="end">'
        f"{_e(_duration(high))}</text>"
    )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="histogram" width="{TIMELINE_WIDTH}"'
        f' height="{HISTOGRAM_HEIGHT}" viewBox="0 0 {TIMELINE_WIDTH} {HISTOGRAM_HEIGHT}">'
        f"{''.join(shapes)}{labels}</svg>"
    )


# ---------------------------------------------------------------------------------------------
# Fetching and writing


def fetch_objects(
    api_client: client.ApiClient, namespace: str, name: str
) -> tuple[JsonDict, list[JsonDict], list[JsonDict]]:
    """The VideoJob, its Segments and its inference Jobs, in the API's JSON shape."""
    custom = client.CustomObjectsApi(api_client)
    videojob: JsonDict = custom.get_namespaced_custom_object(
        GROUP, VERSION, namespace, VIDEOJOB_PLURAL, name
    )
    uid = videojob["metadata"]["uid"]
    selector = f"{labels.VIDEOJOB_UID}={uid}"
    listed_segments = custom.list_namespaced_custom_object(
        GROUP, VERSION, namespace, SEGMENT_PLURAL, label_selector=selector
    )
    segments = [s for s in listed_segments["items"] if s["spec"].get("videoJobUid") == uid]
    listed = client.BatchV1Api(api_client).list_namespaced_job(
        namespace, label_selector=f"{selector},{labels.ROLE}={labels.Role.INFERENCE}"
    )
    jobs = [api_client.sanitize_for_serialization(job) for job in listed.items]
    return videojob, segments, jobs


def write_report(api_client: client.ApiClient, namespace: str, name: str, path: Path | str) -> Path:
    """Fetch VideoJob ``namespace/name`` with its Segments and Jobs and write its report."""
    videojob, segments, jobs = fetch_objects(api_client, namespace, name)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(render_report(videojob, segments, jobs), encoding="utf-8")
    partial.replace(path)
    return path
