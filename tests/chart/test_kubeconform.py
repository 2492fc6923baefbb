"""kubeconform on the rendered chart, against schemas made from the session's real API server
(built-in kinds) and from the CRDs (ours, kopf's peering, Prometheus Operator's
ServiceMonitor). Every object must be found and valid; broken manifests must be refused."""

from __future__ import annotations

import copy
import json
import subprocess
from typing import Any

import pytest
import yaml

from tests.chart.conftest import VALUE_SETS, Helm, Schemas, Tools, documents, find

pytestmark = pytest.mark.cluster


def kubeconform(tools: Tools, schemas: Schemas, manifests: str) -> tuple[int, list[dict[str, Any]]]:
    """Exit status and per-object results of kubeconform -strict on `manifests`."""
    args = [str(tools.kubeconform), "-strict", "-summary", "-output", "json", "-verbose"]
    args += ["-kubernetes-version", schemas.kubernetes_version]
    for location in schemas.locations():
        args += ["-schema-location", location]
    result = subprocess.run(
        [*args, "-"], input=manifests, capture_output=True, text=True, timeout=120
    )
    assert result.stdout, result.stderr
    resources: list[dict[str, Any]] = json.loads(result.stdout)["resources"]
    return result.returncode, resources


def dump(*docs: dict[str, Any]) -> str:
    return yaml.safe_dump_all(docs, sort_keys=False)


@pytest.mark.parametrize("name", list(VALUE_SETS))
def test_rendered_chart_is_valid(
    tools: Tools, schemas: Schemas, rendered: dict[str, str], name: str
) -> None:
    code, resources = kubeconform(tools, schemas, rendered[name])
    problems = [r for r in resources if r["status"] != "statusValid"]
    assert code == 0 and not problems, problems
    # Nothing skipped for want of a schema: every object was really checked.
    assert len(resources) == len(documents(rendered[name]))


def test_schemas_cover_the_kinds_used(schemas: Schemas) -> None:
    strict = schemas.root / f"v{schemas.kubernetes_version}-standalone-strict"
    for file in [
        "deployment-apps-v1.json",
        "service-v1.json",
        "configmap-v1.json",
        "secret-v1.json",
        "serviceaccount-v1.json",
        "pod-v1.json",
        "clusterrole-rbac-v1.json",
        "clusterrolebinding-rbac-v1.json",
        "customresourcedefinition-apiextensions-v1.json",
        "job-batch-v1.json",
    ]:
        assert (strict / file).is_file(), file
    crds = schemas.root / "crds"
    for file in [
        "stereo.dev/videojob_v1alpha1.json",
        "stereo.dev/segment_v1alpha1.json",
        "kopf.dev/clusterkopfpeering_v1.json",
        "monitoring.coreos.com/servicemonitor_v1.json",
    ]:
        assert (crds / file).is_file(), file


def _deployment(helm: Helm) -> dict[str, Any]:
    return find(documents(helm.template()), "Deployment", "-operator")


@pytest.mark.parametrize(
    "breakage",
    ["unknown-field", "wrong-type", "bad-enum", "missing-required"],
)
def test_broken_deployment_is_refused(
    tools: Tools, schemas: Schemas, helm: Helm, breakage: str
) -> None:
    deploy = copy.deepcopy(_deployment(helm))
    container = deploy["spec"]["template"]["spec"]["containers"][0]
    if breakage == "unknown-field":
        container["imagePullPolicee"] = "Always"
    elif breakage == "wrong-type":
        container["securityContext"]["readOnlyRootFilesystem"] = "yes"
    elif breakage == "bad-enum":
        container["imagePullPolicy"] = "Sometimes"
    else:
        del deploy["spec"]["selector"]
    code, (result,) = kubeconform(tools, schemas, dump(deploy))
    assert code != 0
    assert result["status"] == "statusInvalid", result
    # The untouched manifest passes, so the refusal is the breakage's doing.
    code, (result,) = kubeconform(tools, schemas, dump(_deployment(helm)))
    assert code == 0 and result["status"] == "statusValid", result


def _videojob(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "stereo.dev/v1alpha1",
        "kind": "VideoJob",
        "metadata": {"name": name},
        "spec": {"source": "s3://films/in/movie.mp4", "format": "half-sbs", **spec},
    }


def test_custom_resources_are_checked_against_our_crds(tools: Tools, schemas: Schemas) -> None:
    good = _videojob("film")
    unknown = _videojob("film-unknown", sourceUri="s3://x/y.mp4")
    wrong_type = _videojob("film-type", segmentSeconds="long")
    missing = _videojob("film-missing")
    del missing["spec"]["source"]
    code, results = kubeconform(tools, schemas, dump(good, unknown, wrong_type, missing))
    status = {r["name"]: r["status"] for r in results}
    assert code != 0
    assert status == {
        "film": "statusValid",
        "film-unknown": "statusInvalid",
        "film-type": "statusInvalid",
        "film-missing": "statusInvalid",
    }


def test_service_monitor_is_checked_against_its_crd(
    tools: Tools, schemas: Schemas, rendered: dict[str, str]
) -> None:
    monitor = copy.deepcopy(find(documents(rendered["aws"]), "ServiceMonitor", "-watcher"))
    monitor["spec"]["endpoints"][0]["scrapeEvery"] = "30s"
    code, (result,) = kubeconform(tools, schemas, dump(monitor))
    assert code != 0 and result["status"] == "statusInvalid", result
