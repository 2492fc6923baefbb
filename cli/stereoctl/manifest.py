"""The VideoJob a submit creates, built and validated with the shared models."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from stereo_types.backend import DEFAULT_ENGINE, BackendType, Engine
from stereo_types.names import (
    API_VERSION,
    MAX_VIDEOJOB_NAME_LENGTH,
    VIDEOJOB_KIND,
    validate_videojob_name,
)
from stereo_types.videojob import VideoJobSpec
from stereoctl.errors import InputError

URI_PATTERN = re.compile(r"^(s3|gs|file|https?)://\S+$")
_NAME_SUFFIX_LENGTH = 5


@dataclass(frozen=True)
class SubmitOptions:
    """What the user set; None leaves the model's default."""

    format: str | None = None
    divergence: float | None = None
    convergence: float | None = None
    depth_model: str | None = None
    segment_seconds: int | None = None
    parallelism: int | None = None
    backend: str | None = None
    engine: str | None = None
    completion_grace_seconds: int | None = None


def is_uri(source: str) -> bool:
    return URI_PATTERN.match(source) is not None


def _parse_backend(value: str) -> BackendType:
    try:
        return BackendType(value)
    except ValueError:
        valid = ", ".join(e.value for e in BackendType)
        raise InputError(f"unsupported backend {value!r}; valid: {valid}") from None


def _given(**values: Any) -> dict[str, Any]:
    return {key: value for key, value in values.items() if value is not None}


def _backend(options: SubmitOptions) -> dict[str, Any]:
    backend = _parse_backend(options.backend or BackendType.JOB.value)
    # The stub backend only copies: spare the user from also saying --engine copy.
    default_engine = Engine.COPY if backend is BackendType.STUB else DEFAULT_ENGINE
    return {"type": backend, "engine": options.engine or default_engine}


def _describe(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "spec"
    return f"invalid VideoJob: {where}: {first['msg']}"


def build_spec(source: str, options: SubmitOptions) -> VideoJobSpec:
    """The spec, validated as the API server would (bounds, CEL-equivalent rules): one
    validation, so an error names the field's whole path (stereo.divergence)."""
    document = {
        "source": source,
        "stereo": _given(
            divergence=options.divergence,
            convergence=options.convergence,
            depth_model=options.depth_model,
        ),
        "timeouts": _given(completion_grace_seconds=options.completion_grace_seconds),
        "backend": _backend(options),
        **_given(
            format=options.format,
            segment_seconds=options.segment_seconds,
            parallelism=options.parallelism,
        ),
    }
    try:
        return VideoJobSpec.model_validate(document)
    except ValidationError as exc:
        raise InputError(_describe(exc)) from None


def videojob_manifest(name: str, namespace: str, spec: VideoJobSpec) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": VIDEOJOB_KIND,
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec.to_wire(),
    }


def check_name(name: str) -> str:
    """name, or an InputError with the CRD's own rule."""
    try:
        return validate_videojob_name(name)
    except ValueError as exc:
        raise InputError(f"invalid --name: {exc}") from None


def name_for(source: str) -> str:
    """A fresh VideoJob name from the video's file name: 'holiday-clip-3f9a2'."""
    stem = Path(source.rstrip("/").rsplit("/", 1)[-1]).stem.lower()
    base = re.sub(r"[^a-z0-9]+", "-", stem).strip("-") or "video"
    base = base[: MAX_VIDEOJOB_NAME_LENGTH - _NAME_SUFFIX_LENGTH - 1].rstrip("-")
    return f"{base}-{secrets.token_hex(4)[:_NAME_SUFFIX_LENGTH]}"


def safe_file_name(path: Path) -> str:
    """The file name with only URL-unreserved characters, so every event source agrees on it."""
    return re.sub(r"[^A-Za-z0-9._~-]+", "-", path.name).strip("-") or "video"
