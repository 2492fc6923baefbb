"""Fixtures of the Helm chart checks: helm and kubeconform (built by scripts/tools), the chart
rendered with its default values and each example values file, and local JSON schemas."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from tests.chart import k8s_schemas

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "stereo-operator"
EXAMPLES = ROOT / "examples" / "values"
KUBECTL = str(Path(sys.executable).parent / "kubectl")
RELEASE = "stereo"
NAMESPACE = "stereo-system"

# The value sets every check runs on: the chart's defaults and each example file.
VALUE_SETS: dict[str, Path | None] = {
    "default": None,
    **{path.stem: path for path in sorted(EXAMPLES.glob("*.yaml"))},
}


@dataclass(frozen=True)
class Tools:
    helm: Path
    kubeconform: Path
    servicemonitor_crd: Path


@dataclass(frozen=True)
class Helm:
    binary: Path
    env: dict[str, str]

    def run(
        self, *args: str, stdin: str | None = None, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.binary), *args],
            input=stdin,
            capture_output=True,
            text=True,
            env=self.env,
            timeout=timeout,
        )

    def template(
        self,
        *extra: str,
        values: Path | None = None,
        release: str = RELEASE,
        namespace: str = NAMESPACE,
    ) -> str:
        """The rendered manifests; fails the test with helm's message if rendering fails."""
        args = ["template", release, str(CHART), "--namespace", namespace, *extra]
        if values is not None:
            args += ["--values", str(values)]
        result = self.run(*args)
        assert result.returncode == 0, result.stderr
        return result.stdout


def documents(manifests: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(manifests) if doc]


def find(docs: list[dict[str, Any]], kind: str, suffix: str = "") -> dict[str, Any]:
    """The one object of `kind` whose name ends with `suffix`."""
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"].endswith(suffix)]
    assert len(found) == 1, f"{len(found)} {kind} objects named *{suffix}"
    return found[0]


@pytest.fixture(scope="session")
def tools() -> Tools:
    """helm and kubeconform from scripts/tools (built with `go install` once, then cached)."""
    result = subprocess.run(
        [str(ROOT / "scripts" / "tools")], capture_output=True, text=True, timeout=1800
    )
    assert result.returncode == 0, result.stderr
    paths = dict(line.split("=", 1) for line in result.stdout.splitlines() if "=" in line)
    crd = subprocess.run(
        [str(ROOT / "scripts" / "tools"), "servicemonitor-crd"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert crd.returncode == 0, crd.stderr
    return Tools(Path(paths["HELM"]), Path(paths["KUBECONFORM"]), Path(crd.stdout.strip()))


@pytest.fixture(scope="session")
def helm(tools: Tools, tmp_path_factory: pytest.TempPathFactory) -> Helm:
    home = tmp_path_factory.mktemp("helm-home")
    env = {
        **os.environ,
        # Keep helm's caches and repositories out of the user's home.
        "HELM_CACHE_HOME": str(home / "cache"),
        "HELM_CONFIG_HOME": str(home / "config"),
        "HELM_DATA_HOME": str(home / "data"),
    }
    env.pop("KUBECONFIG", None)
    return Helm(tools.helm, env)


@pytest.fixture(scope="session")
def rendered(helm: Helm) -> dict[str, str]:
    """The chart rendered (CRDs included) with each value set."""
    return {name: helm.template("--include-crds", values=path) for name, path in VALUE_SETS.items()}


@pytest.fixture(scope="session")
def crd_files(tools: Tools) -> tuple[Path, ...]:
    """Every CRD the chart's objects need: the chart's own and the ServiceMonitor's."""
    return (*sorted((CHART / "crds").glob("*.yaml")), tools.servicemonitor_crd)


@dataclass(frozen=True)
class Schemas:
    root: Path
    kubernetes_version: str

    def locations(self) -> list[str]:
        return [str(self.root), str(self.root / k8s_schemas.CRD_LOCATION)]


@pytest.fixture(scope="session")
def schemas(
    api: client.ApiClient, crd_files: tuple[Path, ...], tmp_path_factory: pytest.TempPathFactory
) -> Schemas:
    """kubeconform schemas: the real API server's kinds, and those of the CRDs."""
    root = tmp_path_factory.mktemp("kubeconform-schemas")
    version = k8s_schemas.write_kubernetes_schemas(api, root)
    k8s_schemas.write_crd_schemas(k8s_schemas.crd_documents(crd_files), root)
    return Schemas(root, version)


def kubectl(
    kubeconfig: Path, *args: str, stdin: str | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [KUBECTL, f"--kubeconfig={kubeconfig}", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="session")
def installed_crds(kubeconfig: Path, crd_files: tuple[Path, ...]) -> Iterator[None]:
    """The chart's CRDs (and the ServiceMonitor CRD) on the session's API server."""
    args = ["apply", "--server-side", "--force-conflicts"]
    for path in crd_files:
        args += ["-f", str(path)]
    applied = kubectl(kubeconfig, *args)
    assert applied.returncode == 0, applied.stderr
    names = [doc["metadata"]["name"] for doc in k8s_schemas.crd_documents(crd_files)]
    waited = kubectl(
        kubeconfig,
        "wait",
        "--for=condition=Established",
        "--timeout=60s",
        *[f"crd/{name}" for name in names],
    )
    assert waited.returncode == 0, waited.stderr
    yield
