"""The committed CRDs as the tests read them: schemas, and defaulting as the API server does it."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from stereo_types.crdgen import RESOURCES

CRD_DIR = Path(__file__).resolve().parents[1] / "crds"


def load(filename: str) -> dict[str, Any]:
    return dict(yaml.safe_load((CRD_DIR / filename).read_text()))


CRDS = {resource.kind: load(resource.filename) for resource in RESOURCES}


def root_schema(kind: str) -> dict[str, Any]:
    return dict(CRDS[kind]["spec"]["versions"][0]["schema"]["openAPIV3Schema"])


def node_at(schema: dict[str, Any], json_path: str) -> dict[str, Any]:
    node = schema
    for name in json_path.strip(".").split("."):
        node = node["properties"][name]
    return node


def apply_defaults(schema: dict[str, Any], value: Any) -> Any:
    """Structural defaulting as the API server does it: missing fields with a
    default get it, then defaulting recurses into the result."""
    value = copy.deepcopy(value)
    if schema.get("type") == "object" and isinstance(value, dict):
        for name, child in schema.get("properties", {}).items():
            if name not in value and "default" in child:
                value[name] = copy.deepcopy(child["default"])
            if name in value:
                value[name] = apply_defaults(child, value[name])
    elif schema.get("type") == "array" and isinstance(value, list):
        value = [apply_defaults(schema["items"], item) for item in value]
    return value
