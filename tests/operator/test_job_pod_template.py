"""The Jobs' extra volumes and security contexts are valid pod fields: the real API server
accepts a Job built with them (server-side dry run, strict field validation)."""

from __future__ import annotations

import pytest
from kubernetes import client

from stereo_operator import jobs
from stereo_operator.config import OperatorConfig, PodTemplate
from stereo_types.layout import VideoJobRef
from tests.operator.factories import ROOT, spec

pytestmark = pytest.mark.cluster


def test_api_server_accepts_volumes_and_security_contexts(
    api: client.ApiClient, namespace: str
) -> None:
    media = PodTemplate(
        volumes=[
            {"name": "models", "emptyDir": {"sizeLimit": "1Gi"}},
            {"name": "cfg", "configMap": {"name": "stereo-extra", "optional": True}},
        ],
        volume_mounts=[
            {"name": "models", "mountPath": "/models"},
            {"name": "cfg", "mountPath": "/etc/extra", "readOnly": True},
        ],
        pod_security_context={"runAsNonRoot": True, "runAsUser": 10001, "fsGroup": 10001},
        security_context={
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
    )
    config = OperatorConfig(workspace="file:///ws", media=media)
    ref = VideoJobRef(namespace, "movie", "0000-uid-1111")
    manifest = jobs.split_job(ref, spec(), ROOT, config)
    manifest["metadata"].pop("ownerReferences")  # no such VideoJob on the server
    created = client.BatchV1Api(api).create_namespaced_job(
        namespace, manifest, dry_run="All", field_validation="Strict"
    )
    pod = created.spec.template.spec
    assert [v.name for v in pod.volumes] == ["models", "cfg"]
    assert pod.security_context.run_as_user == 10001
    [container] = pod.containers
    assert [m.mount_path for m in container.volume_mounts] == ["/models", "/etc/extra"]
    assert container.security_context.read_only_root_filesystem is True
