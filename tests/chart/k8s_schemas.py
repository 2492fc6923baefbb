"""JSON schemas for kubeconform, made locally (its default source, GitHub, is unreachable here).

Built-in kinds come from the running API server's OpenAPI v3 documents (`/openapi/v3/...`),
custom resources from CustomResourceDefinition manifests. Both are written in the layouts
kubeconform reads from a local directory:

    <root>/v<k8s version>-standalone-strict/<kind>[-<group prefix>]-<version>.json
    <root>/crds/<group>/<kind>_<version>.json

"Strict" as in kubeconform's own schema sets: every object schema that lists its properties
rejects others (`additionalProperties: false`), unless it preserves unknown fields. Each file
is standalone: the definitions it references are copied into its `definitions`.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client

_COMPONENTS = "#/components/schemas/"
_DEFINITIONS = "#/definitions/"
# Kept out of the files: documentation only, and by far the largest part of the documents.
_DROPPED_KEYS = {"description"}

CRD_LOCATION = "crds/{{ .Group }}/{{ .ResourceKind }}_{{ .ResourceAPIVersion }}.json"


def _get_json(api: client.ApiClient, path: str) -> Any:
    rsp = api.call_api(
        "GET", api.configuration.host + path, header_params={"Accept": "application/json"}
    )
    rsp.read()
    if rsp.status != 200:
        raise RuntimeError(f"GET {path}: HTTP {rsp.status}")
    return json.loads(rsp.data)


def server_version(api: client.ApiClient) -> str:
    """The API server's version without the leading v, e.g. 1.37.2."""
    git_version: str = _get_json(api, "/version")["gitVersion"]
    return git_version.lstrip("v").split("+", 1)[0]


def openapi_components(api: client.ApiClient) -> dict[str, Any]:
    """Every schema of every group-version the server serves, by definition name."""
    index = _get_json(api, "/openapi/v3")
    schemas: dict[str, Any] = {}
    for entry in index["paths"].values():
        doc = _get_json(api, "/" + entry["serverRelativeURL"].lstrip("/"))
        schemas.update(doc.get("components", {}).get("schemas", {}))
    return schemas


def kind_suffix(group: str, version: str) -> str:
    """kubeconform's file-name suffix: -v1 for the core group, else -<first label>-<version>."""
    return f"-{group.split('.')[0]}-{version}".lower() if group else f"-{version}".lower()


def _clean(node: Any, *, strict: bool) -> Any:
    """A copy without descriptions, with $refs pointing at `definitions`, strict if asked."""
    if isinstance(node, list):
        return [_clean(item, strict=strict) for item in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROPPED_KEYS and isinstance(value, str):
            continue
        if key == "$ref" and isinstance(value, str) and value.startswith(_COMPONENTS):
            out[key] = _DEFINITIONS + value[len(_COMPONENTS) :]
        elif key == "properties" and isinstance(value, dict):
            # Property names are data, not keywords: never drop one called "description".
            out[key] = {name: _clean(sub, strict=strict) for name, sub in value.items()}
        else:
            out[key] = _clean(value, strict=strict)
    if out.get("nullable") is True and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    if out.get("x-kubernetes-int-or-string") is True and "type" not in out:
        out.setdefault("anyOf", [{"type": "integer"}, {"type": "string"}])
    if (
        strict
        and "properties" in out
        and "additionalProperties" not in out
        and not out.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str) and value.startswith(_DEFINITIONS):
                yield value[len(_DEFINITIONS) :]
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


def _standalone(name: str, cleaned: dict[str, Any]) -> dict[str, Any]:
    """The schema `name` with every definition it reaches (recursively) under definitions."""
    needed: dict[str, Any] = {}
    todo = [name]
    while todo:
        current = todo.pop()
        if current in needed:
            continue
        needed[current] = cleaned[current]
        todo.extend(ref for ref in _refs(cleaned[current]) if ref not in needed)
    root = copy.deepcopy(cleaned[name])
    root["definitions"] = needed
    return root


def write_kubernetes_schemas(api: client.ApiClient, root: Path) -> str:
    """Write a schema per built-in kind under `root`; return the server version (1.X.Y)."""
    version = server_version(api)
    components = openapi_components(api)
    cleaned = {name: _clean(schema, strict=True) for name, schema in components.items()}
    out = root / f"v{version}-standalone-strict"
    out.mkdir(parents=True, exist_ok=True)
    for name, schema in components.items():
        for gvk in schema.get("x-kubernetes-group-version-kind", []):
            file = out / f"{gvk['kind'].lower()}{kind_suffix(gvk['group'], gvk['version'])}.json"
            file.write_text(json.dumps(_standalone(name, cleaned)))
    return version


def crd_documents(paths: Iterable[Path]) -> Iterator[dict[str, Any]]:
    for path in paths:
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc.get("kind") == "CustomResourceDefinition":
                yield doc


def write_crd_schemas(crds: Iterable[dict[str, Any]], root: Path) -> list[str]:
    """Write a schema per served version of each CRD; return the group/kind_version written."""
    written = []
    for crd in crds:
        spec = crd["spec"]
        group, kind = spec["group"], spec["names"]["kind"]
        for version in spec["versions"]:
            if not version.get("served", True):
                continue
            schema = _clean(version["schema"]["openAPIV3Schema"], strict=True)
            # The API server accepts these at the root of every custom resource, listed or not.
            props = schema.setdefault("properties", {})
            props.setdefault("apiVersion", {"type": "string"})
            props.setdefault("kind", {"type": "string"})
            props.setdefault("metadata", {"type": "object"})
            file = root / "crds" / group / f"{kind.lower()}_{version['name']}.json"
            file.parent.mkdir(parents=True, exist_ok=True)
            file.write_text(json.dumps(schema))
            written.append(f"{group}/{kind}_{version['name']}")
    return written
