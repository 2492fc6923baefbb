"""Volumes, volume mounts and security contexts of the Jobs: from the chart's values through
the operator's config file into the Job manifests, and refused by the schema when malformed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from stereo_operator import jobs
from stereo_operator.backends import backend_for
from stereo_operator.config import OperatorConfig
from stereo_storage import StorageConfig
from tests.chart.conftest import CHART, Helm, documents, find
from tests.operator.factories import REF, ROOT, segment, spec

MODELS = {"name": "models", "persistentVolumeClaim": {"claimName": "stereo-models"}}
MOUNT = {"name": "models", "mountPath": "/models", "readOnly": True}
POD_SECURITY = {"runAsNonRoot": True, "runAsUser": 10001, "fsGroup": 10001}
CONTAINER_SECURITY = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}
SETTINGS = {
    "volumes": [MODELS],
    "volumeMounts": [MOUNT],
    "podSecurityContext": POD_SECURITY,
    "securityContext": CONTAINER_SECURITY,
}


def _config(helm: Helm, template: str | None = None) -> OperatorConfig:
    args = ["--set-json", f"jobs.{template}={json.dumps(SETTINGS)}"] if template else []
    docs = documents(helm.template(*args))
    data = yaml.safe_load(find(docs, "ConfigMap", "-operator")["data"]["config.yaml"])
    return OperatorConfig.model_validate(data)


def _inference_pod(config: OperatorConfig) -> dict[str, Any]:
    the_spec = spec(backend={"type": "job", "engine": "builtin"})
    backend = backend_for(REF, the_spec, config, [])
    manifest = backend.manifest(segment(1, vj_spec=the_spec), 1)  # type: ignore[attr-defined]
    pod: dict[str, Any] = manifest["spec"]["template"]["spec"]
    return pod


def _assert_applied(pod: dict[str, Any]) -> None:
    assert pod["volumes"] == [MODELS]
    assert pod["securityContext"] == POD_SECURITY
    [container] = pod["containers"]
    assert container["volumeMounts"] == [MOUNT]
    assert container["securityContext"] == CONTAINER_SECURITY


def _assert_untouched(pod: dict[str, Any]) -> None:
    assert "volumes" not in pod and "securityContext" not in pod
    [container] = pod["containers"]
    assert "volumeMounts" not in container and "securityContext" not in container


def test_values_reach_the_inference_jobs_only(helm: Helm) -> None:
    config = _config(helm, "inference")
    _assert_applied(_inference_pod(config))
    _assert_untouched(jobs.split_job(REF, spec(), ROOT, config)["spec"]["template"]["spec"])


def test_values_reach_the_media_jobs_only(helm: Helm) -> None:
    config = _config(helm, "media")
    for manifest in (
        jobs.split_job(REF, spec(), ROOT, config),
        jobs.assemble_job(REF, spec(), ROOT, "s3://b/o.mp4", config, segment_bytes=1 << 30),
    ):
        _assert_applied(manifest["spec"]["template"]["spec"])
    _assert_untouched(_inference_pod(config))


def test_defaults_add_nothing(helm: Helm) -> None:
    config = _config(helm)
    _assert_untouched(_inference_pod(config))
    _assert_untouched(jobs.split_job(REF, spec(), ROOT, config)["spec"]["template"]["spec"])


@pytest.mark.parametrize(
    ("value", "named"),
    [
        ('jobs.inference.volumes=[{"name": "models"}]', "volumes"),
        ('jobs.inference.volumes=[{"emptyDir": {}}]', "volumes"),
        ('jobs.media.volumeMounts=[{"name": "m", "mountPath": "relative"}]', "mountPath"),
        ('jobs.inference.securityContext={"runAsUser": "root"}', "runAsUser"),
        ('jobs.media.podSecurityContext={"runAsUser": -1}', "runAsUser"),
    ],
)
def test_schema_refuses_malformed_settings(helm: Helm, value: str, named: str) -> None:
    result = helm.run("template", "r", str(CHART), "--set-json", value)
    assert result.returncode != 0
    assert named in result.stderr, result.stderr


def test_operator_refuses_a_mount_of_no_volume() -> None:
    with pytest.raises(ValueError, match=r"not in volumes: \['cache'\]"):
        OperatorConfig.model_validate(
            {"inference": {"volumeMounts": [{"name": "cache", "mountPath": "/cache"}]}}
        )


def test_gcs_key_is_mounted_into_the_jobs_beside_their_own_volumes(helm: Helm) -> None:
    """A GCS key Secret reaches the Jobs as a file (as in the operator), named by
    GOOGLE_APPLICATION_CREDENTIALS and the Jobs' StorageConfig; S3 keys stay envFrom."""
    docs = documents(
        helm.template(
            "--set", "storage.kind=gcs,storage.bucket=bkt,storage.existingSecret=gcs-key",
            "--set-json", f"jobs.inference={json.dumps(SETTINGS)}",
        )
    )  # fmt: skip
    data = yaml.safe_load(find(docs, "ConfigMap", "-operator")["data"]["config.yaml"])
    config = OperatorConfig.model_validate(data)
    key_dir = "/var/run/secrets/stereo/storage"
    key_volume = {"name": "storage-credentials", "secret": {"secretName": "gcs-key"}}
    key_mount = {"name": "storage-credentials", "mountPath": key_dir, "readOnly": True}
    assert config.inference.volumes == [MODELS, key_volume]
    assert config.inference.volume_mounts == [MOUNT, key_mount]
    assert config.media.volumes == [key_volume]
    for template in (config.inference, config.media):
        env = {e["name"]: e["value"] for e in template.env}
        assert env["GOOGLE_APPLICATION_CREDENTIALS"] == f"{key_dir}/key.json"
        storage = StorageConfig.model_validate_json(env["STEREO_STORAGE_CONFIG"])
        assert storage.secret_dir == Path(key_dir)
        assert not template.env_from
    pod = _inference_pod(config)
    assert pod["volumes"] == [MODELS, key_volume]


def test_s3_keys_are_not_mounted_into_the_jobs(helm: Helm) -> None:
    docs = documents(
        helm.template("--set", "storage.kind=s3,storage.bucket=bkt,storage.existingSecret=keys")
    )
    data = yaml.safe_load(find(docs, "ConfigMap", "-operator")["data"]["config.yaml"])
    config = OperatorConfig.model_validate(data)
    assert config.inference.volumes == [] and config.media.volume_mounts == []
    assert config.inference.env_from == [{"secretRef": {"name": "keys"}}]
