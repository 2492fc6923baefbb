"""Suspend, delete, crash and restart, sharing the cluster, replicas."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from stereo_operator.backends import backend_for
from stereo_operator.config import OperatorConfig
from stereo_operator.views import segment_view
from stereo_types.layout import VideoJobRef
from stereo_types.videojob import VideoJobSpec
from tests.operator.harness import Harness, active, file_path

# The fixtures (cluster_access, harness, media) live in the harness module.
pytest_plugins = ["tests.operator.harness"]
pytestmark = pytest.mark.cluster

SLOW = {"convert": {"*": {"*": "sleep:1.5"}}}


def inference_jobs(harness: Harness, videojob: str | None = None) -> list[Any]:
    return harness.jobs("inference", videojob)


def files_under(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def test_suspend_stops_new_starts_and_resume_continues(harness: Harness, media: dict) -> None:
    harness.start_operator()
    harness.set_faults("pause", SLOW)
    harness.create_videojob("pause", media["4s"], parallelism=2)
    harness.wait(lambda: inference_jobs(harness), 60, "the first inference Jobs")
    harness.patch_spec("pause", suspend=True)

    def suspended() -> dict | None:
        vj = harness.videojob("pause") or {}
        conds = {c["type"]: c for c in vj.get("status", {}).get("conditions", [])}
        return vj if conds.get("Suspended", {}).get("status") == "True" else None

    harness.wait(suspended, 20, "the Suspended condition")
    started = {j.metadata.name for j in inference_jobs(harness)}
    # Running ones finish; nothing new starts.
    harness.wait(
        lambda: not [j for j in inference_jobs(harness) if active(j)], 30, "running Jobs to end"
    )
    time.sleep(3)
    assert {j.metadata.name for j in inference_jobs(harness)} == started
    vj = harness.videojob("pause") or {}
    assert vj["status"]["phase"] == "Running"
    assert vj["status"]["segmentsCompleted"] < vj["status"]["segmentsTotal"]

    harness.patch_spec("pause", suspend=False)
    vj = harness.wait_phase("pause", "Succeeded", "Failed", timeout=90)
    assert vj["status"]["phase"] == "Succeeded"
    conds = {c["type"]: c for c in vj["status"]["conditions"]}
    assert conds["Suspended"]["status"] == "False"
    # Resumed where it left off: no segment ran twice.
    assert all(s["status"]["attempts"] == 1 for s in harness.segments("pause"))
    assert len(inference_jobs(harness)) == vj["status"]["segmentsTotal"]


def test_delete_mid_run_removes_segments_jobs_and_files(harness: Harness, media: dict) -> None:
    harness.start_operator()
    harness.set_faults("gone", {"convert": {"*": {"*": "sleep:20"}}})
    vj = harness.create_videojob("gone", media["4s"])
    harness.wait(
        lambda: [j for j in inference_jobs(harness) if active(j)], 60, "running inference Jobs"
    )
    folder = harness.workspace / harness.namespace / "gone" / vj["metadata"]["uid"]
    assert files_under(folder)  # segment inputs, audio, plan
    harness.custom.delete_namespaced_custom_object(
        "stereo.dev", "v1alpha1", harness.namespace, "videojobs", "gone"
    )
    harness.wait(lambda: harness.videojob("gone") is None, 60, "the VideoJob to go")
    harness.wait(lambda: not harness.segments("gone"), 30, "its Segments to go")
    harness.wait(lambda: not harness.jobs(), 30, "its Jobs to go")
    assert files_under(folder) == []


def test_delete_after_success_keeps_the_final_output(harness: Harness, media: dict) -> None:
    harness.start_operator()
    vj = harness.create_videojob("kept", media["4s"])
    done = harness.wait_phase("kept", "Succeeded", "Failed", timeout=90)
    final = file_path(done["status"]["outputUri"])
    folder = harness.workspace / harness.namespace / "kept" / vj["metadata"]["uid"]
    assert final.parent == folder and len(files_under(folder)) > 1
    harness.custom.delete_namespaced_custom_object(
        "stereo.dev", "v1alpha1", harness.namespace, "videojobs", "kept"
    )
    harness.wait(lambda: harness.videojob("kept") is None, 60, "the VideoJob to go")
    assert files_under(folder) == [final.name]


def test_operator_killed_and_restarted_finishes_without_duplicate_attempts(
    harness: Harness, media: dict
) -> None:
    first = harness.start_operator()
    harness.set_faults("crash", SLOW)
    harness.create_videojob("crash", media["6s"], parallelism=2)
    harness.wait(
        lambda: [j for j in inference_jobs(harness) if active(j)], 60, "running inference Jobs"
    )
    first.kill()

    # As if it had died between creating a Job and recording it in the Segment's status:
    # create the next pending segment's attempt-1 Job the way the operator does.
    vj = harness.videojob("crash") or {}
    pending = next(
        s for s in harness.segments("crash") if s.get("status", {}).get("attempts", 0) == 0
    )
    ref = VideoJobRef(harness.namespace, "crash", vj["metadata"]["uid"])
    config = OperatorConfig.model_validate(harness.config)
    backend = backend_for(ref, VideoJobSpec.model_validate(vj["spec"]), config, [])
    orphan = backend.manifest(segment_view(pending), 1)  # type: ignore[attr-defined]
    try:
        harness.batch.create_namespaced_job(harness.namespace, orphan)
    except ApiException as exc:  # the kill itself came between the create and the record
        assert exc.status == 409, exc

    harness.start_operator()
    done = harness.wait_phase("crash", "Succeeded", "Failed", timeout=120)
    assert done["status"]["phase"] == "Succeeded", done["status"]
    segments = harness.segments("crash")
    assert all(s["status"]["attempts"] == 1 for s in segments), [s["status"] for s in segments]
    names = sorted(j.metadata.name for j in inference_jobs(harness))
    assert len(names) == len(segments), names  # one Job per segment, the adopted one included
    adopted = next(s for s in segments if s["metadata"]["name"] == pending["metadata"]["name"])
    assert adopted["status"]["jobName"] == orphan["metadata"]["name"]


def test_two_videojobs_share_the_cluster_cap(harness: Harness, media: dict) -> None:
    harness.start_operator(maxInflight=2)
    # The first one's attempts outlast the second one's split, so both want slots at once.
    harness.set_faults("first", {"convert": {"*": {"*": "sleep:3"}}})
    harness.set_faults("second", SLOW)
    harness.create_videojob("first", media["6s"], parallelism=2)
    harness.wait(
        lambda: len([j for j in inference_jobs(harness, "first") if active(j)]) == 2,
        60,
        "the first VideoJob to fill the cap",
    )
    harness.create_videojob("second", media["4s"], parallelism=2)

    peak = 0
    stop = threading.Event()

    def watch() -> None:
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, len([j for j in inference_jobs(harness) if active(j)]))
            time.sleep(0.1)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        for name in ("first", "second"):
            vj = harness.wait_phase(name, "Succeeded", "Failed", timeout=150)
            assert vj["status"]["phase"] == "Succeeded", vj["status"]
    finally:
        stop.set()
        watcher.join(5)
    assert peak <= 2, f"the cluster-wide cap is 2, saw {peak} inference Jobs at once"

    # Fair share: the second got slots while the first still had segments to start.
    def created(videojob: str) -> list[float]:
        return sorted(
            j.metadata.creation_timestamp.timestamp() for j in inference_jobs(harness, videojob)
        )

    assert created("second")[0] < created("first")[-1]


def test_a_second_replica_waits_and_takes_over(harness: Harness, media: dict) -> None:
    peering = ["--peering=stereo-tests", "--peering-lifetime=5"]
    leader = harness.start_operator(*peering)
    harness.wait(lambda: "Resuming operations" in leader.tail(), 30, "the first replica to run")
    # kopf starts a peered operator paused; this one stays so: the leader started earlier.
    follower = harness.start_operator(*peering)
    harness.wait(lambda: "Initial authentication has finished" in follower.tail(), 30, "start")
    harness.set_faults("relay", {"convert": {"*": {"*": "sleep:1.5"}}})
    harness.create_videojob("relay", media["4s"], parallelism=1)
    harness.wait(lambda: "started attempt" in leader.tail(200), 60, "the leader to start work")
    assert "Resuming operations" not in follower.tail(400)
    assert "started attempt" not in follower.tail(400)

    leader.kill()  # no goodbye: the follower waits for the leader's keep-alive to expire
    harness.wait(lambda: "Resuming operations" in follower.tail(400), 60, "the takeover")
    vj = harness.wait_phase("relay", "Succeeded", "Failed", timeout=90)
    assert vj["status"]["phase"] == "Succeeded", vj["status"]
    assert "started attempt" in follower.tail(400)
    assert all(s["status"]["attempts"] == 1 for s in harness.segments("relay"))
