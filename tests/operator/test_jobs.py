"""The Job manifests: names, ownership, failure policy, resources, the CLI contract."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from stereo_operator import jobs
from stereo_operator.backends import backend_for
from stereo_operator.config import OperatorConfig, PodTemplate
from stereo_types.names import job_name
from stereo_types.plan import SourceWindow
from tests.operator.factories import CONFIG, REF, ROOT, segment, spec


def container(manifest: dict[str, Any]) -> dict[str, Any]:
    [main] = manifest["spec"]["template"]["spec"]["containers"]
    return main


def test_names_are_deterministic_and_fit_a_label() -> None:
    assert jobs.split_job_name(REF) == jobs.split_job_name(REF)
    assert jobs.split_job_name(REF).startswith("movie-split-")
    assert jobs.assemble_job_name(REF).startswith("movie-assemble-")
    assert jobs.inference_job_name(REF, 3, 2) == job_name("movie", 3, 2, REF.uid)
    long = REF.__class__(REF.namespace, "a" * 40, REF.uid)
    assert len(jobs.assemble_job_name(long)) <= 63
    other = REF.__class__(REF.namespace, REF.name, "another-uid")
    assert jobs.split_job_name(other) != jobs.split_job_name(REF)


def test_split_job_runs_the_plan_contract() -> None:
    manifest = jobs.split_job(REF, spec(stereo={"preRollFrames": 4}), ROOT, CONFIG)
    assert manifest["metadata"]["ownerReferences"] == [
        {
            "apiVersion": "stereo.dev/v1alpha1",
            "kind": "VideoJob",
            "name": "movie",
            "uid": REF.uid,
            "controller": True,
        }
    ]
    assert manifest["metadata"]["labels"]["stereo.dev/role"] == "split"
    args = container(manifest)["args"]
    assert args == [
        "plan",
        "--input",
        "file:///in/movie.mp4",
        "--workspace",
        "file:///ws",
        "--namespace",
        "films",
        "--videojob",
        "movie",
        "--uid",
        REF.uid,
        "--segment-seconds",
        "2",
        "--pre-roll",
        "4",
        "--container",
        "mp4",
    ]
    assert manifest["spec"]["backoffLimit"] == 2  # maxRetries: transient plan failures
    # It writes only the plan: a little scratch space, and a deadline.
    assert container(manifest)["resources"] == {
        "requests": {"ephemeral-storage": str(jobs.PLAN_EPHEMERAL_BYTES)}
    }
    assert manifest["spec"]["activeDeadlineSeconds"] == jobs.PLAN_DEADLINE_SECONDS


def test_split_job_asks_plan_to_check_the_inference_image() -> None:
    """The job backend's engine and model are checked where the split Job sees the
    inference Jobs' files; the stub (copy engine) and remote backends are not."""
    builtin = spec(backend={"type": "job", "engine": "builtin"}, stereo={"depthModel": "Any_V2_L"})
    args = container(jobs.split_job(REF, builtin, ROOT, CONFIG))["args"]
    assert args[-4:] == ["--engine", "builtin", "--depth-model", "Any_V2_L"]
    assert "--engine" not in container(jobs.split_job(REF, spec(), ROOT, CONFIG))["args"]
    http = spec(backend={"type": "http", "engine": "builtin", "http": {"url": "http://infer"}})
    assert "--engine" not in container(jobs.split_job(REF, http, ROOT, CONFIG))["args"]
    # Weights mounted on the inference Jobs alone: the split Job cannot tell.
    models = {"volumes": [{"name": "models", "emptyDir": {}}]}
    mounted = CONFIG.model_copy(update={"inference": PodTemplate.model_validate(models)})
    assert "--engine" not in container(jobs.split_job(REF, builtin, ROOT, mounted))["args"]
    # Or pointed at by a variable on the inference Jobs alone; other variables do not matter.
    for name, checked in (("STEREO_DEPTH_WEIGHTS", False), ("STEREO_METRICS", True)):
        env = PodTemplate(env=[{"name": name, "value": "x"}])
        config = CONFIG.model_copy(update={"inference": env})
        args = container(jobs.split_job(REF, builtin, ROOT, config))["args"]
        assert ("--engine" in args) is checked, name


def test_assemble_job_runs_the_assemble_contract() -> None:
    gib = 1 << 30
    manifest = jobs.assemble_job(
        REF, spec(), ROOT, "s3://out/movie.mp4", CONFIG, segment_bytes=10 * gib
    )
    # The segment outputs and the final file beside them, plus headroom.
    requests = container(manifest)["resources"]["requests"]
    assert requests == {"ephemeral-storage": str(21 * gib)}
    assert manifest["spec"]["activeDeadlineSeconds"] == 600 + 20 * gib // (20 << 20)
    assert container(manifest)["args"] == [
        "assemble",
        "--plan",
        "file:///ws/films/movie/0000-uid-1111/plan.json",
        "--output",
        "s3://out/movie.mp4",
        "--container",
        "mp4",
        "--format",
        "full-sbs",
    ]


def inference_manifest(config: OperatorConfig = CONFIG, **spec_fields: Any) -> dict[str, Any]:
    the_spec = spec(**spec_fields)
    backend = backend_for(REF, the_spec, config, [])
    return backend.manifest(segment(1, vj_spec=the_spec), 2)  # type: ignore[attr-defined]


def test_inference_job_is_one_attempt_owned_by_its_segment() -> None:
    manifest = inference_manifest(timeouts={"segmentSeconds": 900})
    meta = manifest["metadata"]
    assert meta["name"] == jobs.inference_job_name(REF, 1, 2)
    assert meta["ownerReferences"][0]["kind"] == "Segment"
    assert meta["ownerReferences"][0]["uid"] == "seg-uid-1"
    assert meta["labels"] == {
        "stereo.dev/videojob": "movie",
        "stereo.dev/videojob-uid": REF.uid,
        "stereo.dev/role": "inference",
        "stereo.dev/segment-index": "1",
        "stereo.dev/attempt": "2",
    }
    job_spec = manifest["spec"]
    assert job_spec["backoffLimit"] == 0
    assert job_spec["activeDeadlineSeconds"] == 900
    assert job_spec["ttlSecondsAfterFinished"] == 3600
    assert job_spec["template"]["metadata"]["labels"]["stereo.dev/attempt"] == "2"
    pod = job_spec["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    rules = job_spec["podFailurePolicy"]["rules"]
    assert rules[0]["action"] == "FailJob"
    assert rules[0]["onExitCodes"]["values"] == [3, 69]
    assert rules[1] == {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]}
    main = container(manifest)
    assert main["terminationMessagePolicy"] == "FallbackToLogsOnError"
    env = {e["name"]: e.get("value") for e in main["env"]}
    assert env["STEREO_SEGMENT_INDEX"] == "1" and env["STEREO_ATTEMPT"] == "2"


def test_convert_args_follow_the_contract_and_the_segment() -> None:
    args = container(inference_manifest())["args"]
    assert args[0] == "convert"
    pairs = dict(zip(args[1::2], args[2::2], strict=True))
    assert pairs["--input"] == "file:///in/movie.mp4"  # the source itself
    assert pairs["--output"].endswith("/segments/00001/output.mp4")
    window = SourceWindow.model_validate_json(pairs["--window"])
    assert (window.first_pts, window.frame_count) == (48, 48)
    assert pairs["--engine"] == "copy"  # the stub backend
    assert pairs["--format"] == "full-sbs"
    assert set(pairs) == {
        "--input", "--output", "--format", "--divergence", "--convergence", "--depth-model",
        "--engine", "--window", "--codec", "--crf", "--preset", "--encoder",
    }  # fmt: skip


def test_gpus_come_from_the_template_and_the_stub_takes_none() -> None:
    config = CONFIG.model_copy(
        update={
            "inference": PodTemplate(
                gpus=2,
                resources={"limits": {"cpu": "4", "nvidia.com/gpu": "8"}},
                node_selector={"gpu": "a100"},
                tolerations=[{"key": "nvidia.com/gpu", "operator": "Exists"}],
                priority_class_name="batch-low",
                service_account_name="infer",
            ),
            "queue_name": "gpu-queue",
        }
    )
    job_backend = inference_manifest(config, backend={"type": "job", "engine": "builtin"})
    main = container(job_backend)
    assert main["resources"]["limits"] == {"cpu": "4", "nvidia.com/gpu": "2"}
    pod = job_backend["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"gpu": "a100"}
    assert pod["priorityClassName"] == "batch-low"
    assert pod["serviceAccountName"] == "infer"
    assert pod["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists"}]
    assert job_backend["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "gpu-queue"
    assert "--engine" in main["args"] and "builtin" in main["args"]
    stub = container(inference_manifest(config))
    assert stub["resources"]["limits"] == {"cpu": "4"}


def test_runtime_class_from_the_chart_or_the_videojob_on_gpu_pods_only() -> None:
    config = CONFIG.model_copy(
        update={"inference": PodTemplate(gpus=1, runtime_class_name="nvidia")}
    )
    gpu_job = {"type": "job", "engine": "builtin"}

    def runtime_class(manifest: dict[str, Any]) -> str | None:
        return manifest["spec"]["template"]["spec"].get("runtimeClassName")

    assert runtime_class(inference_manifest(config, backend=gpu_job)) == "nvidia"
    own = gpu_job | {"runtimeClassName": "nvidia-cdi"}
    assert runtime_class(inference_manifest(config, backend=own)) == "nvidia-cdi"
    assert runtime_class(inference_manifest(CONFIG, backend=own)) == "nvidia-cdi"
    assert runtime_class(inference_manifest(CONFIG, backend=gpu_job)) is None
    with pytest.raises(ValidationError, match=r"backend\.runtimeClassName"):
        spec(backend=gpu_job | {"runtimeClassName": "NVIDIA GPU"})
    # The stub takes no GPU, so no GPU runtime (it may not exist on CPU nodes).
    assert runtime_class(inference_manifest(config)) is None
    assert (
        "runtimeClassName"
        not in jobs.split_job(REF, spec(), ROOT, config)["spec"]["template"]["spec"]
    )


def test_media_jobs_carry_no_kueue_label_and_no_gpu() -> None:
    config = CONFIG.model_copy(update={"queue_name": "gpu-queue"})
    manifest = jobs.split_job(REF, spec(), ROOT, config)
    assert "kueue.x-k8s.io/queue-name" not in manifest["metadata"]["labels"]
    assert "limits" not in container(manifest)["resources"]
