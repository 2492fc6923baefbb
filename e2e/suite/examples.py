"""The VideoJob manifests of examples/videojobs/ and which of them can run here."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from stereo_cluster.stack import ROOT

EXAMPLES = ROOT / "examples" / "videojobs"
# Set on examples that need what this cluster may lack (gpu, http-endpoint).
REQUIRES = "stereo.dev/example-requires"


def load(path: Path) -> dict[str, Any]:
    manifest: dict[str, Any] = yaml.safe_load(path.read_text())
    return manifest


def runnable_examples() -> list[Path]:
    """The examples without requirements: each must convert on CPU with the chart alone."""
    found = [
        path
        for path in sorted(EXAMPLES.glob("*.yaml"))
        if REQUIRES not in (load(path)["metadata"].get("annotations") or {})
    ]
    if not found:
        raise RuntimeError(f"no runnable example in {EXAMPLES}")
    return found


def videojob_manifest(path: Path, namespace: str, source: str) -> dict[str, Any]:
    """The example as applied: in the suite's namespace, reading the uploaded sample (the
    examples name s3://stereo/samples/sample.mp4; another cluster's bucket may differ)."""
    manifest = load(path)
    manifest["metadata"]["namespace"] = namespace
    manifest["spec"]["source"] = source
    return manifest


@dataclass
class Outputs:
    """Final outputs the tests saw, by VideoJob name: what must survive the uninstall."""

    uris: dict[str, str] = field(default_factory=dict)
