"""The store as the Helm chart configured it, for users without a config file.

The chart's operator ConfigMap (`config.yaml`) holds the workspace root and the storage
settings; the credentials are in the Secret the operator Deployment mounts as
`storage-credentials`. Reading them needs list on ConfigMaps and get on that Secret; without
the Secret the SDK's default credential chain applies.
"""

from __future__ import annotations

import base64
from typing import Any

import yaml
from kubernetes.client.exceptions import ApiException

from stereoctl.config import StoreSettings
from stereoctl.kube import Kube

OPERATOR_SELECTOR = "app.kubernetes.io/component=operator"
CONFIG_KEY = "config.yaml"
CREDENTIALS_VOLUME = "storage-credentials"
ACCESS_KEY = "AWS_ACCESS_KEY_ID"
SECRET_KEY = "AWS_SECRET_ACCESS_KEY"


def discover(kube: Kube, namespace: str | None) -> StoreSettings | None:
    """The chart's store settings (from namespace, or any), or None when there are none."""
    try:
        if namespace is None:
            maps = kube.core.list_config_map_for_all_namespaces(label_selector=OPERATOR_SELECTOR)
        else:
            maps = kube.core.list_namespaced_config_map(namespace, label_selector=OPERATOR_SELECTOR)
    except ApiException:
        return None
    for item in maps.items:
        text = (item.data or {}).get(CONFIG_KEY)
        parsed = yaml.safe_load(text) if text else None
        if isinstance(parsed, dict) and parsed.get("workspace"):
            keys = _credentials(kube, item.metadata.namespace)
            return _settings(parsed, keys)
    return None


def _settings(parsed: dict[str, Any], keys: tuple[str, str] | None) -> StoreSettings:
    storage = parsed.get("storage") or {}
    return StoreSettings(
        root=parsed["workspace"],
        endpoint=storage.get("endpoint_url"),
        region=storage.get("region"),
        path_style=bool(storage.get("path_style", False)),
        access_key_id=keys[0] if keys else None,
        secret_access_key=keys[1] if keys else None,
    )


def _secret_name(kube: Kube, namespace: str) -> str | None:
    deployments = kube.api_apps().list_namespaced_deployment(
        namespace, label_selector=OPERATOR_SELECTOR
    )
    for deployment in deployments.items:
        for volume in deployment.spec.template.spec.volumes or []:
            if volume.name == CREDENTIALS_VOLUME and volume.secret is not None:
                return str(volume.secret.secret_name)
    return None


def _credentials(kube: Kube, namespace: str) -> tuple[str, str] | None:
    try:
        name = _secret_name(kube, namespace)
        if name is None:
            return None
        data = kube.core.read_namespaced_secret(name, namespace).data or {}
    except ApiException:
        return None
    if ACCESS_KEY not in data or SECRET_KEY not in data:
        return None
    return base64.b64decode(data[ACCESS_KEY]).decode(), base64.b64decode(data[SECRET_KEY]).decode()
