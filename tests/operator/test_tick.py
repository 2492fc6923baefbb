"""The tick's pure parts: capacity from the indexes, snapshots from bodies, settings."""

from __future__ import annotations

from datetime import timedelta

from stereo_operator import main
from stereo_operator.labels import Role
from stereo_operator.tick import capacity_for, prepare
from stereo_operator.views import VideoJobSummary
from stereo_types.videojob import VideoJobPhase
from tests.operator.factories import CONFIG, NOW, REF, attempt_job, job, segment


def summary(uid: str, parallelism: int, minutes_old: int, **kw: object) -> VideoJobSummary:
    fields: dict = {
        "uid": uid,
        "namespace": "films",
        "name": uid,
        "created_at": NOW - timedelta(minutes=minutes_old),
        "parallelism": parallelism,
        "suspend": False,
        "phase": VideoJobPhase.RUNNING,
        "segments_total": 10,
        "deleting": False,
    }
    fields.update(kw)
    return VideoJobSummary(**fields)


def test_capacity_gives_a_newcomer_its_fair_share() -> None:
    # a holds the whole cap of 4; b just arrived with work to do.
    jobs_index = {"a": [attempt_job(i, 1) for i in range(4)]}
    segments_index = {"a": [segment(i) for i in range(10)], "b": []}
    vjs = [summary("a", 4, 10), summary("b", 4, 1)]
    a = capacity_for("a", 4, vjs, jobs_index, segments_index)
    b = capacity_for("b", 4, vjs, jobs_index, segments_index)
    assert (a.share, b.share) == (2, 2)
    assert a.cluster_free == b.cluster_free == 0
    # a starts nothing until it is under its share; b takes the slots that free up.


def test_capacity_ignores_finished_and_media_jobs_and_suspended_demand() -> None:
    jobs_index = {
        "a": [attempt_job(0, 1, state="succeeded"), job(Role.SPLIT), attempt_job(1, 1)],
    }
    vjs = [summary("a", 4, 10), summary("b", 4, 1, suspend=True)]
    cap = capacity_for("a", 4, vjs, jobs_index, {"a": [segment(i) for i in range(5)]})
    assert cap.cluster_free == 3
    assert cap.share == 4


def test_prepare_reports_an_invalid_spec() -> None:
    body = {
        "metadata": {"namespace": REF.namespace, "name": REF.name, "uid": REF.uid},
        "spec": {"source": "ftp://nope", "segmentSeconds": 0},
    }
    prepared = prepare(CONFIG, None, body, {}, {}, {}, NOW)
    assert prepared.snapshot is None and prepared.invalid_spec


def test_prepare_builds_the_http_backend() -> None:
    body = {
        "metadata": {"namespace": REF.namespace, "name": REF.name, "uid": REF.uid},
        "spec": {
            "source": "file:///in.mp4",
            "backend": {"type": "http", "http": {"url": "http://x"}},
        },
    }
    prepared = prepare(CONFIG, None, body, {}, {}, {}, NOW)
    assert prepared.snapshot is not None
    assert prepared.snapshot.backend_error is None
    assert prepared.backend is not None and prepared.backend.name == "http"


def test_kopf_settings_keep_kopf_out_of_the_strict_status() -> None:
    args = main.build_parser().parse_args(["--standalone", "--peering-lifetime", "15"])
    settings = main.settings_for(args, CONFIG.model_copy(update={"watch_timeout_seconds": 30}))
    assert settings.watching.server_timeout == 30
    assert type(settings.persistence.progress_storage).__name__ == "AnnotationsProgressStorage"
    assert type(settings.persistence.diffbase_storage).__name__ == "AnnotationsDiffBaseStorage"
    assert settings.persistence.finalizer == "stereo.dev/cleanup"
    assert settings.peering.lifetime == 15
