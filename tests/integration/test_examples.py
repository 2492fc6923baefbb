"""Every VideoJob manifest in examples/ is accepted by the real API server with our CRDs
installed (a server-side dry run: schema, defaults and CEL rules, nothing stored)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.integration.kube import ROOT, kubectl

EXAMPLES = sorted((ROOT / "examples" / "videojobs").glob("*.yaml"))

pytestmark = pytest.mark.cluster


def test_there_are_examples() -> None:
    assert len(EXAMPLES) >= 8, EXAMPLES


@pytest.mark.parametrize("example", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_is_accepted_by_the_api_server(
    crds: None, kubeconfig: Path, namespace: str, example: Path
) -> None:
    result = kubectl(kubeconfig, "apply", "--dry-run=server", "-n", namespace, "-f", str(example))
    assert result.returncode == 0, f"{example.name}: {result.stderr}"
    assert "created (server dry run)" in result.stdout, result.stdout


def test_a_broken_example_is_refused(crds: None, kubeconfig: Path, namespace: str) -> None:
    """The dry run really validates: the same manifest with a bad format fails, naming it."""
    manifest = yaml.safe_load(EXAMPLES[0].read_text())
    manifest["spec"]["format"] = "side-by-side"
    result = kubectl(
        kubeconfig,
        "apply",
        "--dry-run=server",
        "-n",
        namespace,
        "-f",
        "-",
        stdin=yaml.safe_dump(manifest),
    )
    assert result.returncode != 0
    assert "spec.format" in result.stderr, result.stderr
