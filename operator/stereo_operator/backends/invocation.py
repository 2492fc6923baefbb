"""The request document of one segment attempt, as `stereo-infer serve` reads it.

Shared by the `http` backend (the POST body) and the `managed` backend (the document the
asynchronous endpoint fetches from the workspace).
"""

from __future__ import annotations

import json
from typing import Any

from stereo_types.segment import SegmentSpec


def invocation_document(spec: SegmentSpec) -> dict[str, Any]:
    """`POST /invocations`'s body for the segment: camelCase keys, as the server accepts."""
    document = {
        "inputUri": spec.input_uri,
        "outputUri": spec.output_uri,
        "format": spec.format.value,
        "stereo": spec.stereo.to_wire(),
        "engine": spec.backend.engine.value,
        "encoding": spec.encoding.to_wire(),
    }
    if spec.window is not None:
        document["window"] = spec.window.to_wire()
    return document


def invocation_bytes(spec: SegmentSpec) -> bytes:
    return json.dumps(invocation_document(spec), sort_keys=True).encode()


def attempt_key(segment_uid: str, attempt: int) -> str:
    """A deterministic, printable id of one attempt (SageMaker's InferenceId: <= 64 chars)."""
    return f"stereo-{segment_uid}-a{attempt}"[:64]
