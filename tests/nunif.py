"""The pinned iw3 (nagadomi/nunif) snapshot that scripts/setup unpacks outside the repository.

The iw3 tests run iw3's real code from it; they fail, never skip, when it is missing.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from stereo_cluster.binaries import cache_root

NUNIF_COMMIT = "d23721f1b5f0a4c92c3ee1be013180bf298730c5"
ROOT = Path(__file__).resolve().parents[1]
# iw3's own PyPI dependencies beyond the project's (inference-image/iw3-constraints.txt).
IW3_PACKAGES = ("torchvision", "av", "PIL")


def nunif_dir() -> Path:
    """Where scripts/setup unpacks the snapshot (the same cache as the cluster binaries)."""
    return cache_root() / f"nunif-{NUNIF_COMMIT[:8]}"


def require_nunif() -> Path:
    """The snapshot's root, for PYTHONPATH; a clear failure when setup has not installed it."""
    path = nunif_dir()
    if not (path / ".stereo-installed").is_file() or not (path / "iw3" / "utils.py").is_file():
        pytest.fail(
            f"the iw3 snapshot (nunif {NUNIF_COMMIT[:8]}) is not installed at {path}:"
            " run scripts/setup (it unpacks ../shared/third_party/nunif-"
            f"{NUNIF_COMMIT[:8]}.tar.gz, or $STEREO_NUNIF_TARBALL)",
            pytrace=False,
        )
    missing = [name for name in IW3_PACKAGES if importlib.util.find_spec(name) is None]
    if missing:
        pytest.fail(
            f"iw3 needs {', '.join(missing)} in .venv: run scripts/setup"
            " (it installs inference-image/iw3-constraints.txt)",
            pytrace=False,
        )
    return path
