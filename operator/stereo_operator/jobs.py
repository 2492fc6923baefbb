"""Pure builders of the batch/v1 Jobs the operator runs: split, one inference attempt, assemble.

Names are deterministic (a handler that runs twice creates nothing twice) and carry a hash
of the VideoJob's UID (a re-created VideoJob never meets its predecessor's Jobs).
"""

from __future__ import annotations

import copy
import hashlib
import json
from typing import Any

from stereo_operator import labels
from stereo_operator.config import OperatorConfig, PodTemplate
from stereo_operator.labels import Role
from stereo_types.backend import BackendType, Engine
from stereo_types.layout import StorageRoot, VideoJobRef
from stereo_types.names import API_VERSION, SEGMENT_KIND, VIDEOJOB_KIND, job_name
from stereo_types.plan import plan_uri
from stereo_types.segment import SegmentSpec
from stereo_types.videojob import VideoJobSpec, pre_roll_frames

Manifest = dict[str, Any]

GPU_RESOURCE = "nvidia.com/gpu"
CONTAINER_NAME = "main"
# stereo-infer's exit codes for bad input and for an engine or depth model the image lacks
# (see stereo_infer.exitcodes): retrying cannot help.
EXIT_BAD_INPUT = 3
EXIT_MODEL_UNAVAILABLE = 69
_UID_HASH_LENGTH = 5  # as in stereo_types.names.job_name
EPHEMERAL_STORAGE = "ephemeral-storage"
_MIB = 1 << 20
_GIB = 1 << 30
# The plan Job writes one JSON file and reads the source's packet index (one pass over the
# file, no copy): a little scratch space, and an hour covers a 100 GB source at ~30 MB/s.
PLAN_EPHEMERAL_BYTES = 256 * _MIB
PLAN_DEADLINE_SECONDS = 3600
# The assemble Job downloads every segment output and joins them beside them.
ASSEMBLE_HEADROOM_BYTES = _GIB
ASSEMBLE_BASE_SECONDS = 600
ASSEMBLE_BYTES_PER_SECOND = 20 * _MIB


def uid_hash(uid: str) -> str:
    return hashlib.sha256(uid.encode()).hexdigest()[:_UID_HASH_LENGTH]


def split_job_name(ref: VideoJobRef) -> str:
    return f"{ref.name}-split-{uid_hash(ref.uid)}"


def assemble_job_name(ref: VideoJobRef) -> str:
    return f"{ref.name}-assemble-{uid_hash(ref.uid)}"


def inference_job_name(ref: VideoJobRef, index: int, attempt: int) -> str:
    return job_name(ref.name, index, attempt, ref.uid)


def owner_reference(kind: str, name: str, uid: str) -> dict[str, Any]:
    """A controller reference; dependents go when the owner goes (background GC)."""
    return {"apiVersion": API_VERSION, "kind": kind, "name": name, "uid": uid, "controller": True}


def videojob_owner(ref: VideoJobRef) -> dict[str, Any]:
    return owner_reference(VIDEOJOB_KIND, ref.name, ref.uid)


def _resources(template: PodTemplate, gpus: int, scratch_bytes: int | None) -> dict[str, Any]:
    resources = copy.deepcopy(template.resources)
    for section in ("limits", "requests"):
        if section in resources:
            resources[section] = {
                k: v for k, v in dict(resources[section]).items() if k != GPU_RESOURCE
            }
    if gpus > 0:
        # Extended resources are requested through limits; requests default to them.
        resources.setdefault("limits", {})[GPU_RESOURCE] = str(gpus)
    if scratch_bytes is not None:
        # The scheduler then places the pod where its scratch files fit; a value the chart
        # sets explicitly wins.
        resources.setdefault("requests", {}).setdefault(EPHEMERAL_STORAGE, str(scratch_bytes))
    return {k: v for k, v in resources.items() if v}


def _pod_spec(
    template: PodTemplate,
    args: list[str],
    env: list[dict[str, Any]],
    gpus: int,
    scratch_bytes: int | None = None,
) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": CONTAINER_NAME,
        "image": template.image,
        "imagePullPolicy": template.image_pull_policy,
        "command": list(template.command),
        "args": args,
        "env": [*env, *copy.deepcopy(template.env)],
        # The tail of stderr (stereo-infer prints its error there) becomes the termination
        # message, which the operator copies into the status.
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    if template.env_from:
        container["envFrom"] = copy.deepcopy(template.env_from)
    resources = _resources(template, gpus, scratch_bytes)
    if resources:
        container["resources"] = resources
    if template.volume_mounts:
        container["volumeMounts"] = copy.deepcopy(template.volume_mounts)
    if template.security_context:
        container["securityContext"] = copy.deepcopy(template.security_context)
    pod: dict[str, Any] = {"restartPolicy": "Never", "containers": [container]}
    if template.volumes:
        pod["volumes"] = copy.deepcopy(template.volumes)
    if template.pod_security_context:
        pod["securityContext"] = copy.deepcopy(template.pod_security_context)
    if template.node_selector:
        pod["nodeSelector"] = dict(template.node_selector)
    if template.tolerations:
        pod["tolerations"] = copy.deepcopy(template.tolerations)
    if template.service_account_name:
        pod["serviceAccountName"] = template.service_account_name
    if template.priority_class_name:
        pod["priorityClassName"] = template.priority_class_name
    # A GPU runtime (the NVIDIA container runtime's RuntimeClass) only where GPUs are used.
    if template.runtime_class_name and gpus > 0:
        pod["runtimeClassName"] = template.runtime_class_name
    return pod


def _pod_failure_policy() -> dict[str, Any]:
    return {
        "rules": [
            # Bad input: fail the Job at once, the operator fails the segment.
            {
                "action": "FailJob",
                "onExitCodes": {
                    "containerName": CONTAINER_NAME,
                    "operator": "In",
                    "values": [EXIT_BAD_INPUT, EXIT_MODEL_UNAVAILABLE],
                },
            },
            # Preemption, eviction, node drain: not the segment's fault, so the Job controller
            # makes a new pod without counting it against backoffLimit (no attempt burnt).
            {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]},
        ]
    }


def build_job(
    *,
    name: str,
    namespace: str,
    job_labels: dict[str, str],
    owner: dict[str, Any],
    template: PodTemplate,
    args: list[str],
    env: list[dict[str, Any]],
    gpus: int,
    backoff_limit: int,
    active_deadline_seconds: int | None = None,
    queue_name: str | None = None,
    scratch_bytes: int | None = None,
) -> Manifest:
    all_labels = {**template.labels, **job_labels}
    if queue_name:
        all_labels[labels.KUEUE_QUEUE] = queue_name
    spec: dict[str, Any] = {
        "backoffLimit": backoff_limit,
        "podFailurePolicy": _pod_failure_policy(),
        "ttlSecondsAfterFinished": template.ttl_seconds_after_finished,
        "template": {
            "metadata": {"labels": {**template.labels, **job_labels}},
            "spec": _pod_spec(template, args, env, gpus, scratch_bytes),
        },
    }
    if active_deadline_seconds is not None:
        spec["activeDeadlineSeconds"] = active_deadline_seconds
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": all_labels,
            "ownerReferences": [owner],
        },
        "spec": spec,
    }


def _identity_env(ref: VideoJobRef, index: int | None = None, attempt: int | None = None) -> list:
    env = [
        {"name": "STEREO_NAMESPACE", "value": ref.namespace},
        {"name": "STEREO_VIDEOJOB", "value": ref.name},
        {"name": "STEREO_VIDEOJOB_UID", "value": ref.uid},
    ]
    if index is not None:
        env.append({"name": "STEREO_SEGMENT_INDEX", "value": str(index)})
    if attempt is not None:
        env.append({"name": "STEREO_ATTEMPT", "value": str(attempt)})
    return env


def split_job(
    ref: VideoJobRef, spec: VideoJobSpec, root: StorageRoot, config: OperatorConfig
) -> Manifest:
    args = [
        "plan",
        "--input",
        spec.source,
        "--workspace",
        root.uri,
        "--namespace",
        ref.namespace,
        "--videojob",
        ref.name,
        "--uid",
        ref.uid,
        "--segment-seconds",
        str(spec.segment_seconds),
        "--pre-roll",
        str(pre_roll_frames(spec)),
        # Tracks the output cannot hold fail the plan, before any GPU time is spent.
        "--container",
        spec.encoding.container.value,
        *image_check_args(spec, config),
    ]
    return _media_job(
        ref,
        spec,
        config,
        Role.SPLIT,
        split_job_name(ref),
        args,
        scratch_bytes=PLAN_EPHEMERAL_BYTES,
        deadline_seconds=PLAN_DEADLINE_SECONDS,
    )


def image_check_args(spec: VideoJobSpec, config: OperatorConfig) -> list[str]:
    """Plan's ``--engine``/``--depth-model``: it refuses, before reading the source, an engine
    or depth model its image lacks (exit 69, reason ModelUnavailable).

    Only where the split Job sees what the inference Jobs will: the job backend (the stub runs
    the copy engine, which needs nothing; http and managed run elsewhere) with a media pod
    template that sees the inference one's files (weights are often mounted on the inference
    Jobs alone; there the first inference Job is the check).
    """
    if spec.backend.type is not BackendType.JOB or not same_files(config.media, config.inference):
        return []
    return ["--engine", spec.backend.engine.value, "--depth-model", spec.stereo.depth_model]


# The variables stereo-infer's engine and model checks read (stereo_infer.engines.depth,
# .iw3): where weights are looked for, and where Python finds iw3.
MODEL_ENV = frozenset(
    {
        "STEREO_DEPTH_WEIGHTS",
        "HF_HUB_CACHE",
        "HF_HOME",
        "XDG_CACHE_HOME",
        "HOME",
        "NUNIF_HOME",
        "PYTHONPATH",
    }
)


def same_files(media: PodTemplate, inference: PodTemplate) -> bool:
    """Whether the two templates' containers see the same software and weights: the same
    image, volumes, envFrom and model-related variables (others, such as the metrics
    settings, may differ)."""
    fields = ("image", "env_from", "volumes", "volume_mounts")
    same = all(getattr(media, name) == getattr(inference, name) for name in fields)
    return same and _model_env(media) == _model_env(inference)


def _model_env(template: PodTemplate) -> list[dict[str, Any]]:
    return [e for e in template.env if e.get("name") in MODEL_ENV]


def assemble_job(
    ref: VideoJobRef,
    spec: VideoJobSpec,
    root: StorageRoot,
    output_uri: str,
    config: OperatorConfig,
    segment_bytes: int,
) -> Manifest:
    """The join: its scratch space and deadline follow the size of the segment outputs."""
    args = [
        "assemble",
        "--plan",
        plan_uri(root, ref),
        "--output",
        output_uri,
        "--container",
        spec.encoding.container.value,
        # Players read the stereo layout (and VR180's projection) from the file.
        "--format",
        spec.format.value,
    ]
    return _media_job(
        ref,
        spec,
        config,
        Role.ASSEMBLE,
        assemble_job_name(ref),
        args,
        # The outputs, then the final file beside them.
        scratch_bytes=2 * segment_bytes + ASSEMBLE_HEADROOM_BYTES,
        deadline_seconds=ASSEMBLE_BASE_SECONDS + 2 * segment_bytes // ASSEMBLE_BYTES_PER_SECOND,
    )


def _media_job(
    ref: VideoJobRef,
    spec: VideoJobSpec,
    config: OperatorConfig,
    role: Role,
    name: str,
    args: list[str],
    *,
    scratch_bytes: int,
    deadline_seconds: int,
) -> Manifest:
    """A split or assemble Job: the media template, owned by the VideoJob."""
    return build_job(
        name=name,
        namespace=ref.namespace,
        job_labels=labels.job_labels(ref, role),
        owner=videojob_owner(ref),
        template=config.media,
        args=args,
        env=_identity_env(ref),
        gpus=config.media.gpus,
        # Transient failures (exit 75, a lost node) are retried by the Job controller itself.
        backoff_limit=spec.max_retries,
        active_deadline_seconds=deadline_seconds,
        scratch_bytes=scratch_bytes,
    )


def convert_args(spec: SegmentSpec, engine: Engine) -> list[str]:
    if spec.window is not None:
        # The window names its pre-roll: the frames it decodes before the segment's own.
        source = ["--window", json.dumps(spec.window.to_wire(), separators=(",", ":"))]
    else:
        source = ["--pre-roll", str(spec.stereo.pre_roll_frames or 0)]
    return [
        "convert",
        "--input",
        spec.input_uri,
        "--output",
        spec.output_uri,
        "--format",
        spec.format.value,
        "--divergence",
        str(spec.stereo.divergence),
        "--convergence",
        str(spec.stereo.convergence),
        "--depth-model",
        spec.stereo.depth_model,
        "--engine",
        engine.value,
        *source,
        "--codec",
        spec.encoding.codec.value,
        "--crf",
        str(spec.encoding.crf),
        "--preset",
        spec.encoding.preset.value,
        "--encoder",
        spec.encoding.encoder.value,
    ]


def inference_job(
    ref: VideoJobRef,
    segment_name: str,
    segment_uid: str,
    spec: SegmentSpec,
    attempt: int,
    config: OperatorConfig,
    *,
    engine: Engine,
    gpus: int,
    deadline_seconds: int,
) -> Manifest:
    """One attempt at one segment; owned by the Segment, so it goes with it."""
    template = config.inference
    if spec.backend.runtime_class_name:
        template = template.model_copy(
            update={"runtime_class_name": spec.backend.runtime_class_name}
        )
    return build_job(
        name=inference_job_name(ref, spec.index, attempt),
        namespace=ref.namespace,
        job_labels=labels.job_labels(ref, Role.INFERENCE, spec.index, attempt),
        owner=owner_reference(SEGMENT_KIND, segment_name, segment_uid),
        template=template,
        args=convert_args(spec, engine),
        env=_identity_env(ref, spec.index, attempt),
        gpus=gpus,
        # The operator counts attempts itself (retry backoff, status, events).
        backoff_limit=0,
        active_deadline_seconds=deadline_seconds,
        queue_name=config.queue_name,
    )
