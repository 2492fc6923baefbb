"""A container's environment, resolved the way the kubelet does it.

Supports value, valueFrom (fieldRef, resourceFieldRef, configMapKeyRef, secretKeyRef),
envFrom (ConfigMaps and Secrets with an optional prefix) and $(VAR) expansion in env values,
command and args.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Mapping
from typing import Any

# Reads a ConfigMap or Secret's data: (kind, namespace, name) -> data, or None if absent.
DataReader = Callable[[str, str, str], dict[str, str] | None]

_ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
_FIELD_SUBSCRIPT = re.compile(r"^metadata\.(labels|annotations)\['(.+)'\]$")


class EnvError(ValueError):
    """A reference that cannot be resolved (the kubelet's CreateContainerConfigError)."""


def expand(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes $(VAR) expansion: $$ escapes, unknown references stay as written."""
    out: list[str] = []
    i = 0
    while i < len(text):
        if text.startswith("$$", i):
            out.append("$")
            i += 2
        elif text.startswith("$(", i) and (end := text.find(")", i + 2)) != -1:
            name = text[i + 2 : end]
            out.append(env.get(name, text[i : end + 1]))
            i = end + 1
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def field_value(pod: Mapping[str, Any], path: str) -> str:
    meta = pod.get("metadata", {})
    status = pod.get("status", {})
    if m := _FIELD_SUBSCRIPT.match(path):
        return str((meta.get(m.group(1)) or {}).get(m.group(2), ""))
    simple = {
        "metadata.name": meta.get("name"),
        "metadata.namespace": meta.get("namespace"),
        "metadata.uid": meta.get("uid"),
        "spec.nodeName": pod.get("spec", {}).get("nodeName"),
        "spec.serviceAccountName": pod.get("spec", {}).get("serviceAccountName"),
        "status.hostIP": status.get("hostIP", "127.0.0.1"),
        "status.podIP": status.get("podIP", "127.0.0.1"),
        "status.hostIPs": status.get("hostIP", "127.0.0.1"),
        "status.podIPs": status.get("podIP", "127.0.0.1"),
    }
    if path not in simple:
        raise EnvError(f"unsupported fieldRef {path!r}")
    return str(simple[path] or "")


def _resource_value(container: Mapping[str, Any], ref: Mapping[str, Any]) -> str:
    kind, _, resource = ref["resource"].partition(".")
    value = (container.get("resources", {}).get(kind) or {}).get(resource)
    if value is None:
        raise EnvError(f"resourceFieldRef {ref['resource']!r}: container sets no such {kind}")
    return str(value)


def _keyed_value(kind: str, ref: Mapping[str, Any], namespace: str, read: DataReader) -> str | None:
    data = read(kind, namespace, ref["name"])
    optional = bool(ref.get("optional"))
    if data is None or ref["key"] not in data:
        if optional:
            return None
        raise EnvError(f"{kind} {namespace}/{ref['name']} has no key {ref['key']!r}")
    return data[ref["key"]]


def _value_from(
    pod: Mapping[str, Any],
    container: Mapping[str, Any],
    source: Mapping[str, Any],
    read: DataReader,
) -> str | None:
    namespace = pod["metadata"]["namespace"]
    if "fieldRef" in source:
        return field_value(pod, source["fieldRef"]["fieldPath"])
    if "resourceFieldRef" in source:
        return _resource_value(container, source["resourceFieldRef"])
    if "configMapKeyRef" in source:
        return _keyed_value("configmap", source["configMapKeyRef"], namespace, read)
    if "secretKeyRef" in source:
        return _keyed_value("secret", source["secretKeyRef"], namespace, read)
    raise EnvError(f"unsupported valueFrom {sorted(source)}")


def _env_from(namespace: str, sources: list[Mapping[str, Any]], read: DataReader) -> dict[str, str]:
    out: dict[str, str] = {}
    for source in sources:
        kind, ref = (
            ("configmap", source["configMapRef"])
            if "configMapRef" in source
            else ("secret", source["secretRef"])
        )
        data = read(kind, namespace, ref["name"])
        if data is None:
            if ref.get("optional"):
                continue
            raise EnvError(f"envFrom: {kind} {namespace}/{ref['name']} not found")
        prefix = source.get("prefix", "")
        out.update({prefix + k: v for k, v in data.items() if _ENV_NAME.match(prefix + k)})
    return out


def container_env(
    pod: Mapping[str, Any],
    container: Mapping[str, Any],
    read: DataReader,
    base: Mapping[str, str],
) -> dict[str, str]:
    """The full environment of one container: `base`, then envFrom, then env, in that order."""
    env = dict(base)
    env.update(_env_from(pod["metadata"]["namespace"], container.get("envFrom", []), read))
    for var in container.get("env", []):
        if "valueFrom" in var:
            value = _value_from(pod, container, var["valueFrom"], read)
            if value is None:
                continue
        else:
            value = expand(var.get("value", ""), env)
        env[var["name"]] = value
    return env


def decode_secret(data: Mapping[str, str] | None) -> dict[str, str]:
    return {k: base64.b64decode(v).decode() for k, v in (data or {}).items()}
