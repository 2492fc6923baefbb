"""The body of ``POST /invocations``: parsing and validation (pure, no I/O).

A request is JSON::

    {"input_uri": "s3://b/films/film.mkv",
     "output_uri": "s3://b/seg/00001/output.mp4",
     "format": "half-sbs",
     "window": {"streamIndex": 0, "timeBaseNum": 1, "timeBaseDen": 15360, ...},
     "stereo": {"divergence": 2.0, "convergence": 0.5, "depthModel": "Any_V2_S"},
     "engine": "builtin",
     "encoding": {"codec": "h264", "crf": 20, "preset": "medium"}}

Keys may be snake_case or camelCase (``inputUri``); ``window`` (the segment's part of the
source, as the plan gives it; omitted: every frame of the input, less ``preRollFrames``),
``stereo``, ``engine`` and ``encoding`` are optional: an omitted depth model means the model the
server loaded at start, omitted encoding the VideoJob defaults. SageMaker's
``X-Amzn-SageMaker-Custom-Attributes`` header may carry ``key=value`` pairs
separated by commas or semicolons for any of the leaf fields (``format``,
``engine``, ``inputUri``, ``outputUri``, ``divergence``, ``convergence``,
``depthModel``, ``preRollFrames``, ``codec``, ``crf``, ``preset``, ``encoder``); the body
wins where both give one. A body of the form ``{"InputLocation": "s3://..."}``
points at the request document instead of being it (the server fetches it).

Every rejection names the field it is about; the settings' rules (and the defaults of those
the request leaves out) are the VideoJob's, from ``stereo_types``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic.alias_generators import to_camel

from stereo_types.backend import EngineChoice
from stereo_types.base import SourceUri, StorageUri
from stereo_types.formats import EncodingSettings, FormatChoice, StereoSettings
from stereo_types.plan import SourceWindow

CUSTOM_ATTRIBUTES_HEADER = "X-Amzn-SageMaker-Custom-Attributes"
INPUT_LOCATION_KEYS = ("InputLocation", "inputLocation", "input_location")
MAX_BODY_BYTES = 1 << 20

_TOP = {"format": "format", "engine": "engine", "inputUri": "inputUri", "outputUri": "outputUri"}
_STEREO = tuple(to_camel(name) for name in StereoSettings.model_fields)
_ENCODING = tuple(to_camel(name) for name in EncodingSettings.model_fields)


class RequestError(ValueError):
    """A request the server refuses (HTTP 400), naming the field at fault."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class InvocationRequest(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

    input_uri: SourceUri
    output_uri: StorageUri
    format: FormatChoice
    window: SourceWindow | None = None
    stereo: StereoSettings = StereoSettings()
    # None: the engine the server runs.
    engine: EngineChoice | None = None
    encoding: EncodingSettings = EncodingSettings()

    @property
    def depth_model(self) -> str | None:
        """The requested depth model; None when the request leaves it to the server."""
        return self.stereo.depth_model if "depth_model" in self.stereo.model_fields_set else None


def input_location(document: Any) -> str | None:
    """The URI of the request document when the body only points at it."""
    if isinstance(document, dict) and len(document) == 1:
        for key in INPUT_LOCATION_KEYS:
            value = document.get(key)
            if isinstance(value, str):
                return value
    return None


def parse_json(body: bytes, where: str = "body") -> dict[str, Any]:
    if len(body) > MAX_BODY_BYTES:
        raise RequestError(where, f"larger than {MAX_BODY_BYTES} bytes")
    try:
        document = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RequestError(where, f"not valid JSON: {exc}") from None
    if not isinstance(document, dict):
        raise RequestError(where, "must be a JSON object")
    return document


def parse_custom_attributes(header: str | None) -> dict[str, Any]:
    """The header's ``k=v`` pairs as a partial request document (nested like the body)."""
    out: dict[str, Any] = {}
    if not header:
        return out
    for raw in header.replace(";", ",").split(","):
        item = raw.strip()
        if not item:
            continue
        key, sep, value = item.partition("=")
        key, value = key.strip(), value.strip()
        field = f"{CUSTOM_ATTRIBUTES_HEADER}: {key or item}"
        if not sep or not key:
            raise RequestError(field, "expected key=value")
        camel = to_camel(key)
        if camel in _TOP:
            out[_TOP[camel]] = value
        elif camel in _STEREO:
            out.setdefault("stereo", {})[camel] = value
        elif camel in _ENCODING:
            out.setdefault("encoding", {})[camel] = value
        else:
            known = ", ".join([*_TOP, *_STEREO, *_ENCODING])
            raise RequestError(field, f"unknown attribute; known: {known}")
    return out


def _camelise(document: Mapping[str, Any]) -> dict[str, Any]:
    """Keys in camelCase, in ``stereo`` and ``encoding`` too, so snake and camel merge."""
    out: dict[str, Any] = {}
    for key, value in document.items():
        camel = to_camel(key)
        nested = camel in ("stereo", "encoding") and isinstance(value, Mapping)
        out[camel] = _camelise(value) if nested else value
    return out


def _merge(defaults: Mapping[str, Any], body: Mapping[str, Any]) -> dict[str, Any]:
    """``body`` over ``defaults``; nested objects merged key by key."""
    merged = dict(defaults)
    for key, value in body.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    return merged


def build_request(document: Mapping[str, Any], custom_attributes: str | None) -> InvocationRequest:
    """Validate a request document (plus the header's attributes) into a request."""
    merged = _merge(parse_custom_attributes(custom_attributes), _camelise(document))
    try:
        return InvocationRequest.model_validate(merged)
    except ValidationError as exc:
        error = exc.errors()[0]
        field = ".".join(str(part) for part in error["loc"]) or "body"
        raise RequestError(field, error["msg"]) from None
