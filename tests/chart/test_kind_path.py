"""The kind e2e path (e2e/kind/, `make e2e-kind`, .github/workflows/e2e-kind.yaml), checked as
far as this machine allows: kind itself cannot run here (no node image can be pulled), so
these tests hold its parts to each other, to the chart and to the suite, and validate the
MinIO manifests against the real API server."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.chart.conftest import (
    EXAMPLES,
    KUBECTL,
    ROOT,
    Helm,
    Schemas,
    Tools,
    documents,
    find,
)
from tests.chart.test_kubeconform import kubeconform

KIND = ROOT / "e2e" / "kind"
SCRIPTS = ("up", "test", "down")
WORKFLOW = ROOT / ".github" / "workflows" / "e2e-kind.yaml"


def _setting(name: str, text: str) -> str:
    """A `NAME=${OVERRIDE:-default}` or `NAME=value` setting of a shell file."""
    match = re.search(rf"^{name}=(?:\$\{{\w+:-)?([^}}\s]*)\}}?$", text, re.MULTILINE)
    assert match, f"no {name}= in the file"
    return match.group(1)


LIB = (KIND / "lib.sh").read_text()


def _minio() -> list[dict[str, Any]]:
    return documents((KIND / "minio.yaml").read_text())


def _minio_env() -> dict[str, dict[str, Any]]:
    deployment = find(_minio(), "Deployment", "minio")
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e for e in container["env"]}


def _rendered(helm: Helm) -> list[dict[str, Any]]:
    return documents(
        helm.template("--values", str(EXAMPLES / "minio.yaml"), values=KIND / "values.yaml")
    )


@pytest.mark.parametrize("script", SCRIPTS)
def test_scripts_are_executable_bash_that_parses(script: str) -> None:
    path = KIND / script
    assert path.stat().st_mode & 0o111, f"{path} is not executable"
    assert path.read_text().startswith("#!/usr/bin/env bash\n")
    checked = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr
    assert 'source "$(dirname "$0")/lib.sh"' in path.read_text()


def test_make_target_and_workflow_run_the_scripts() -> None:
    makefile = (ROOT / "Makefile").read_text()
    recipe = re.search(r"^e2e-kind:\n((?:\t.*\n)+)", makefile, re.MULTILINE)
    assert recipe, "no e2e-kind target in the Makefile"
    commands = [line.strip() for line in recipe.group(1).splitlines()]
    assert commands == ["e2e/kind/up", "e2e/kind/test"]
    assert all((ROOT / c).is_file() for c in commands)

    workflow = yaml.safe_load(WORKFLOW.read_text())
    [job] = workflow["jobs"].values()
    assert job["runs-on"] == "ubuntu-latest"
    steps = job["steps"]
    uses = {s["uses"].split("@")[0] for s in steps if "uses" in s}
    assert {"actions/checkout", "actions/setup-python", "actions/setup-go"} <= uses
    runs = [s.get("run", "") for s in steps]
    assert "make e2e-kind" in runs
    assert any(r.strip() == "e2e/kind/down" for r in runs)
    # The pins agree with the scripts' own.
    assert workflow["env"]["KIND_VERSION"] == _setting("KIND_VERSION", LIB)
    tools = (ROOT / "scripts" / "tools").read_text()
    assert workflow["env"]["HELM_VERSION"] == _setting("HELM_VERSION", tools)
    # Files the workflow names exist.
    for path in re.findall(r"(?:scripts|e2e)/[\w./-]+", "\n".join(runs)):
        assert (ROOT / path).exists(), path


def test_up_exports_exactly_what_the_suite_reads() -> None:
    exported = set(re.findall(r"^export (STEREO_E2E_\w+)=", (KIND / "up").read_text(), re.M))
    target = (ROOT / "e2e" / "suite" / "target.py").read_text()
    read = {f"STEREO_E2E_{n}" for n in re.findall(r'ENV_PREFIX}(\w+)"', target)}
    read |= {f"STEREO_E2E_{n}" for n in re.findall(r'need\("(\w+)"\)', target)}
    required = {
        "STEREO_E2E_KUBECONFIG",
        "STEREO_E2E_NAMESPACE",
        "STEREO_E2E_RELEASE",
        "STEREO_E2E_S3_ENDPOINT",
        "STEREO_E2E_BUCKET",
        "STEREO_E2E_ACCESS_KEY",
        "STEREO_E2E_SECRET_KEY",
    }
    assert required <= exported
    assert exported <= read, f"exported but never read: {exported - read}"


def test_minio_webhook_target_is_the_charts_watcher(helm: Helm) -> None:
    docs = _rendered(helm)
    namespace, release = _setting("NAMESPACE", LIB), _setting("RELEASE", LIB)
    assert namespace == "stereo-system" and release == "stereo"  # as helm.template renders
    service = find(docs, "Service", "-watcher")
    port = service["spec"]["ports"][0]["port"]
    name = service["metadata"]["name"]
    env = _minio_env()
    assert env["MINIO_NOTIFY_WEBHOOK_ENABLE_STEREO"]["value"] == "on"
    expected = f"http://{name}.{namespace}.svc.cluster.local:{port}/events/minio"
    assert env["MINIO_NOTIFY_WEBHOOK_ENDPOINT_STEREO"]["value"] == expected
    token = env["MINIO_NOTIFY_WEBHOOK_AUTH_TOKEN_STEREO"]["valueFrom"]["secretKeyRef"]
    assert token == {"name": _setting("WEBHOOK_SECRET", LIB), "key": "token"}
    assert _setting("MINIO_TARGET_ARN", LIB) == "arn:minio:sqs::STEREO:webhook"
    # The watcher reads the same Secret: the chart renders none of its own.
    watcher = find(docs, "Deployment", "-watcher")
    mounted = {
        v["secret"]["secretName"]
        for v in watcher["spec"]["template"]["spec"]["volumes"]
        if "secret" in v
    }
    assert token["name"] in mounted
    assert not [d for d in docs if d["kind"] == "Secret" and "webhook" in d["metadata"]["name"]]


def test_chart_values_fit_the_kind_cluster_and_images(helm: Helm) -> None:
    docs = _rendered(helm)
    cluster = yaml.safe_load((KIND / "cluster.yaml").read_text())
    assert cluster["name"] == _setting("CLUSTER", LIB)
    [gpu_node] = [n for n in cluster["nodes"] if "labels" in n]
    patch = yaml.safe_load(gpu_node["kubeadmConfigPatches"][0])
    taints = patch["nodeRegistration"]["taints"]
    minio_service = find(_minio(), "Service", "minio")
    [mapping] = next(n for n in cluster["nodes"] if n["role"] == "control-plane")[
        "extraPortMappings"
    ]
    assert minio_service["spec"]["ports"][0]["nodePort"] == mapping["containerPort"]
    assert _setting("S3_ENDPOINT", LIB) == f"http://127.0.0.1:{mapping['hostPort']}"

    config = yaml.safe_load(find(docs, "ConfigMap", "-operator")["data"]["config.yaml"])
    inference = config["inference"]
    assert inference["image"] == _setting("INFERENCE_IMAGE", LIB)
    assert inference["imagePullPolicy"] == "Never"
    assert inference["nodeSelector"].items() <= gpu_node["labels"].items()
    for taint in taints:
        assert any(
            t["key"] == taint["key"] and t.get("operator") == "Exists"
            for t in inference["tolerations"]
        ), taint
    for component in ("operator", "watcher"):
        pod = find(docs, "Deployment", f"-{component}")["spec"]["template"]["spec"]
        assert pod["containers"][0]["image"] == _setting("OPERATOR_IMAGE", LIB)
        assert pod["containers"][0]["imagePullPolicy"] == "Never"
        assert not pod.get("imagePullSecrets")
    svc = minio_service["metadata"]
    port = minio_service["spec"]["ports"][0]["port"]
    endpoint = f"http://{svc['name']}.{svc['namespace']}.svc.cluster.local:{port}"
    assert config["storage"]["endpoint_url"] == endpoint
    # Where the suite looks for outputs unless STEREO_E2E_WORKSPACE says otherwise.
    assert config["workspace"] == f"s3://{_setting('BUCKET', LIB)}/workspace"


@pytest.mark.cluster
def test_minio_manifests_are_valid(
    tools: Tools, schemas: Schemas, kubeconfig: Path, namespace: str
) -> None:
    manifests = (KIND / "minio.yaml").read_text()
    code, resources = kubeconform(tools, schemas, manifests)
    assert code == 0 and all(r["status"] == "statusValid" for r in resources), resources
    assert len(resources) == len(documents(manifests))
    # And the API server accepts them (in a scratch namespace: the dry run creates nothing).
    namespaced = [d for d in documents(manifests) if d["kind"] != "Namespace"]
    for doc in namespaced:
        doc["metadata"]["namespace"] = namespace
    applied = subprocess.run(
        [KUBECTL, f"--kubeconfig={kubeconfig}", "apply", "--dry-run=server", "-f", "-"],
        input=yaml.safe_dump_all(namespaced),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert applied.returncode == 0, applied.stderr
    assert applied.stdout.count("(server dry run)") == len(namespaced)
