"""Fixtures shared by the integration tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.kube import apply_crds


@pytest.fixture(scope="module")
def crds(kubeconfig: Path) -> None:
    """The project's CRDs on the session's API server."""
    apply_crds(kubeconfig)
