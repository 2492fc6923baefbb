"""The HTML job report: rendered from API-shaped objects, and for a real VideoJob on the cluster."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from stereo_types.segment import SegmentSpec, SegmentStatus
from stereo_types.videojob import VideoJobSpec, VideoJobStatus
from stereoctl.report import render_report, write_report
from tests.operator.harness import Harness

# The fixtures (cluster_access, harness, media) live in the harness module.
pytest_plugins = ["tests.operator.harness"]

T0 = datetime(2030, 1, 1, 12, 0, 0, tzinfo=UTC)
UID = "6f1c2d3e-0000-4000-8000-00000000abcd"
NAME, NAMESPACE = "film", "studio"
Json = dict[str, Any]


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def rfc3339(seconds: float) -> str:
    return at(seconds).isoformat().replace("+00:00", "Z")


def videojob(*, source: str = "file:///in/film.mp4", **status: Any) -> Json:
    fields = {"phase": "Succeeded", "segmentsTotal": 3, "segmentsCompleted": 3, "retries": 1}
    fields |= {"startTime": at(0), "completionTime": at(30)}
    fields |= {"outputUri": "file:///ws/studio/film/final.mp4", **status}
    spec = VideoJobSpec.model_validate({"source": source, "format": "half-sbs"})
    return {
        "apiVersion": "stereo.dev/v1alpha1",
        "kind": "VideoJob",
        "metadata": {"name": NAME, "namespace": NAMESPACE, "uid": UID},
        "spec": spec.to_wire(),
        "status": VideoJobStatus.model_validate(fields).to_wire(),
    }


def segment(index: int, **status: Any) -> Json:
    prefix = f"file:///ws/{NAMESPACE}/{NAME}/{UID}/segments/{index:05d}"
    spec = SegmentSpec(
        video_job=NAME,
        video_job_uid=UID,
        index=index,
        input_uri=f"{prefix}/input.mp4",
        output_uri=f"{prefix}/output.mp4",
        start_frame=48 * index,
        frame_count=48,
        start_seconds=2.0 * index,
        duration_seconds=2.0,
    )
    return {
        "apiVersion": "stereo.dev/v1alpha1",
        "kind": "Segment",
        "metadata": {"name": f"{NAME}-{index:05d}", "namespace": NAMESPACE},
        "spec": spec.to_wire(),
        "status": SegmentStatus.model_validate(status).to_wire(),
    }


def completed(index: int, start: float, end: float, attempts: int = 1, **more: Any) -> Json:
    completion = {
        "uri": f"file:///ws/{NAMESPACE}/{NAME}/{UID}/segments/{index:05d}/output.mp4",
        "size": 1000,
        "eventTime": at(end),
        "source": "reconcile",
        "recordedAt": at(end + 0.5),
    }
    return segment(
        index,
        phase="Completed",
        attempts=attempts,
        startTime=at(start),
        completionTime=at(end),
        completion=completion,
        **more,
    )


def job(index: int, attempt: int, start: float, end: float | None, outcome: str) -> Json:
    """A batch/v1 Job as ApiClient.sanitize_for_serialization gives it."""
    status: Json = {"startTime": rfc3339(start)}
    if end is not None:
        kind = {"succeeded": "Complete", "failed": "Failed"}[outcome]
        status["conditions"] = [
            {"type": kind, "status": "True", "lastTransitionTime": rfc3339(end)}
        ]
        if kind == "Complete":
            status["completionTime"] = rfc3339(end)
    else:
        status["active"] = 1
    labels = {
        "stereo.dev/videojob": NAME,
        "stereo.dev/videojob-uid": UID,
        "stereo.dev/role": "inference",
        "stereo.dev/segment-index": str(index),
        "stereo.dev/attempt": str(attempt),
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": f"{NAME}-{index:05d}-{attempt}-abcde", "labels": labels},
        "status": status,
    }


class Page(HTMLParser):
    """Every start tag with its attributes, and the text inside each element path."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.text: list[str] = []
        self.stack: list[str] = []
        self.feed(text)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, {k: v or "" for k, v in attrs}))
        if tag not in ("meta", "line", "i"):
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if self.stack and self.stack[-1] == tag:
            self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def find(self, tag: str, cls: str | None = None) -> list[dict[str, str]]:
        return [
            attrs
            for name, attrs in self.tags
            if name == tag and (cls is None or cls in attrs.get("class", "").split())
        ]

    @property
    def all_text(self) -> str:
        return "".join(self.text)


def table_rows(page: str) -> list[list[str]]:
    """The cells of the segments table, row by row (header excluded)."""

    class Cells(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.rows: list[list[str]] = []
            self.cell: list[str] | None = None
            self.inside = False

        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            if tag == "table" and ("class", "segments") in attrs:
                self.inside = True
            elif self.inside and tag == "tr":
                self.rows.append([])
            elif self.inside and tag == "td":
                self.cell = []

        def handle_endtag(self, tag: str) -> None:
            if tag == "table":
                self.inside = False
            elif tag == "td" and self.cell is not None:
                self.rows[-1].append("".join(self.cell))
                self.cell = None

        def handle_data(self, data: str) -> None:
            if self.cell is not None:
                self.cell.append(data)

    parser = Cells()
    parser.feed(page)
    return [row for row in parser.rows if row]


def retried_job() -> tuple[Json, list[Json], list[Json]]:
    """Three segments; segment 1's first attempt failed, its second succeeded."""
    segments = [
        completed(0, 1, 9),
        completed(
            1,
            1,
            24,
            attempts=2,
            lastFailureReason="JobFailed",
            lastFailureMessage="stereo-infer: error: injected failure (exit 75)",
        ),
        completed(2, 9, 18),
    ]
    jobs = [
        job(0, 1, 1, 9, "succeeded"),
        job(1, 1, 1, 6, "failed"),
        job(1, 2, 8, 24, "succeeded"),
        job(2, 1, 9, 18, "succeeded"),
    ]
    return videojob(), segments, jobs


def test_one_bar_per_attempt_coloured_by_outcome() -> None:
    vj, segments, jobs = retried_job()
    page = Page(render_report(vj, segments, jobs))
    bars = page.find("rect", "attempt")
    assert len(bars) == 4 == sum(s["status"]["attempts"] for s in segments)
    outcomes = {(b["data-segment"], b["data-attempt"]): b["class"].split()[1] for b in bars}
    assert outcomes == {
        ("0", "1"): "succeeded",
        ("1", "1"): "failed",
        ("1", "2"): "succeeded",
        ("2", "1"): "succeeded",
    }
    # The retry follows the failed attempt on the same row, after the backoff gap.
    by_key = {(b["data-segment"], b["data-attempt"]): b for b in bars}
    failed, retry = by_key["1", "1"], by_key["1", "2"]
    assert failed["y"] == retry["y"]
    assert float(failed["x"]) + float(failed["width"]) < float(retry["x"])
    assert failed["fill"] != retry["fill"]
    # The timeline spans the VideoJob: the earliest bar starts at the left edge of the plot,
    # the segment finishing last ends 24/30 of the way.
    xs = [float(b["x"]) for b in bars]
    ends = [float(b["x"]) + float(b["width"]) for b in bars]
    plot = 870 - 70
    assert min(xs) == pytest.approx(70 + plot / 30, abs=0.2)
    assert max(ends) == pytest.approx(70 + plot * 24 / 30, abs=0.2)


def test_header_table_and_histogram() -> None:
    vj, segments, jobs = retried_job()
    html = render_report(vj, segments, jobs)
    page = Page(html)
    text = page.all_text
    for expected in (
        "Succeeded",
        "half-sbs",
        "file:///in/film.mp4",
        "file:///ws/studio/film/final.mp4",
        "2030-01-01 12:00:00 UTC",
        "2030-01-01 12:00:30 UTC",
        "30.0 s",
        "3 of 3 completed, 0 failed, 1 retries (4 attempts)",
    ):
        assert expected in text, expected
    assert table_rows(html) == [
        ["0", "Completed", "1", "8.0 s", "reconcile", "-"],
        ["1", "Completed", "2", "23.0 s", "reconcile", "JobFailed"],
        ["2", "Completed", "1", "9.0 s", "reconcile", "-"],
    ]
    failure_cells = [a for t, a in page.tags if t == "td" and a.get("title")]
    assert [c["title"] for c in failure_cells] == [
        "stereo-infer: error: injected failure (exit 75)"
    ]
    bins = page.find("rect", "bin")
    assert len(bins) == 3
    assert sum(float(b["height"]) > 0 for b in bins) == 2  # 8 and 9 s share the first bin


def test_self_contained_no_script_or_external_assets() -> None:
    vj, segments, jobs = retried_job()
    page = Page(render_report(vj, segments, jobs))
    names = {tag for tag, _ in page.tags}
    assert not names & {"script", "link", "img", "iframe", "object", "embed"}
    assert all("src" not in attrs and "href" not in attrs for _, attrs in page.tags)
    assert not any(name.startswith("on") for _, attrs in page.tags for name in attrs)


def test_all_text_is_escaped() -> None:
    hostile = "<script>alert(1)</script>"
    vj = videojob(
        source=f"https://example.com/{hostile}.mp4",
        message=f'stuck "quoted" & {hostile}',
    )
    segments = [
        completed(0, 1, 9),
        segment(
            1,
            phase="Failed",
            attempts=1,
            startTime=at(1),
            completionTime=at(5),
            lastFailureReason="<b>Bold</b>",
            lastFailureMessage=f'"><img src=x onerror=alert(1)>{hostile}',
        ),
    ]
    html = render_report(vj, segments)
    page = Page(html)
    names = {tag for tag, _ in page.tags}
    assert not names & {"script", "img", "b"}
    assert not any(name.startswith("on") for _, attrs in page.tags for name in attrs)
    # The text reads as it was written.
    assert f"https://example.com/{hostile}.mp4" in page.all_text
    assert f'stuck "quoted" & {hostile}' in page.all_text
    assert "<b>Bold</b>" in page.all_text
    titles = [a["title"] for t, a in page.tags if t == "td" and a.get("title")]
    assert titles == [f'"><img src=x onerror=alert(1)>{hostile}']


def test_attempts_whose_jobs_are_gone() -> None:
    """After the Jobs' TTL: single attempts use the segment's times; earlier retries are noted."""
    vj, segments, _ = retried_job()
    page = Page(render_report(vj, segments, []))
    bars = page.find("rect", "attempt")
    assert {(b["data-segment"], b["data-attempt"]) for b in bars} == {("0", "1"), ("2", "1")}
    assert "2 attempt(s) without a timing record" in page.all_text


def test_a_running_job_draws_up_to_now() -> None:
    vj = videojob(phase="Running", completionTime=None, segmentsCompleted=1, retries=0)
    segments = [completed(0, 1, 9), segment(1, phase="Running", attempts=1, startTime=at(10))]
    jobs = [job(0, 1, 1, 9, "succeeded"), job(1, 1, 10, None, "running")]
    page = Page(render_report(vj, segments, jobs, now=at(20)))
    bars = {b["data-segment"]: b for b in page.find("rect", "attempt")}
    assert bars["1"]["class"] == "attempt running"
    # now (20 s) is the end of the timeline.
    end = float(bars["1"]["x"]) + float(bars["1"]["width"])
    assert end == pytest.approx(870, abs=0.2)
    assert "20.0 s (so far)" in page.all_text
    assert table_rows(render_report(vj, segments, jobs, now=at(20)))[1][3] == "10.0 s"


def test_a_pending_videojob_renders() -> None:
    vj = videojob(phase="Pending", startTime=None, completionTime=None, segmentsTotal=0)
    vj["status"]["segmentsCompleted"] = 0
    page = Page(render_report(vj, []))
    assert "No segment has started yet." in page.all_text
    assert "No segment has a duration yet." in page.all_text
    assert not page.find("rect")


@pytest.mark.cluster
def test_report_of_a_real_videojob_with_a_retry(
    harness: Harness, media: dict[str, Path], tmp_path: Path
) -> None:
    harness.start_operator()
    harness.set_faults("report", {"convert": {"1": {"1": "fail:75"}, "*": {"*": "sleep:0.5"}}})
    harness.create_videojob("report", media["4s"], maxRetries=2, backoffSeconds=1)
    vj = harness.wait_phase("report", "Succeeded", "Failed", timeout=120)
    assert vj["status"]["phase"] == "Succeeded", vj["status"]

    path = write_report(harness.api, harness.namespace, "report", tmp_path / "out" / "r.html")
    html = path.read_text()
    page = Page(html)
    bars = page.find("rect", "attempt")
    # On a failure, say why each attempt ended: an extra one must be explained.
    attempts = [
        (s["spec"]["index"], s["status"].get("attempts"), s["status"].get("lastFailureMessage"))
        for s in harness.segments("report")
    ]
    assert len(bars) == 4 + 1, f"one bar per attempt: four segments and one retry; {attempts}"
    failed = [(b["data-segment"], b["data-attempt"]) for b in bars if "failed" in b["class"]]
    assert failed == [("1", "1")]
    rows = table_rows(html)
    assert [row[:3] for row in rows] == [
        ["0", "Completed", "1"],
        ["1", "Completed", "2"],
        ["2", "Completed", "1"],
        ["3", "Completed", "1"],
    ]
    assert rows[1][5] == "JobFailed"
    assert all(row[3].endswith(" s") for row in rows), rows
    assert vj["status"]["outputUri"] in page.all_text
    assert "4 of 4 completed, 0 failed, 1 retries (5 attempts)" in page.all_text
    assert sum(1 for _ in page.find("rect", "bin")) >= 1
