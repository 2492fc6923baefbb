"""The Helm chart on its own: lint, rendering, the contracts with the operator's and the
watcher's own configuration code, pod security, RBAC and labels, and values.schema.json
refusing bad values. No cluster."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from stereo_operator.config import OperatorConfig
from stereo_operator.main import build_parser
from stereo_operator.watcher.config import WatcherConfig, load_config
from stereo_storage.config import StorageConfig
from tests.chart.conftest import (
    CHART,
    EXAMPLES,
    NAMESPACE,
    RELEASE,
    ROOT,
    VALUE_SETS,
    Helm,
    documents,
    find,
)

VALUE_SET_NAMES = list(VALUE_SETS)
# Value sets with a watcher: all but the defaults (file storage has no storage events).
WITH_WATCHER = [name for name in VALUE_SET_NAMES if name != "default"]
MINIO = ("--set", "storage.kind=minio,storage.bucket=bkt,storage.endpoint=http://minio:9000")

Rule = tuple[str, str, str, str]  # apiGroup, resource, resourceName or "", verb


def _env(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e for e in container.get("env", [])}


def _plain_env(container: dict[str, Any]) -> dict[str, str]:
    """The container's variables that have a literal value."""
    return {e["name"]: e["value"] for e in container.get("env", []) if "value" in e}


def _container(docs: list[dict[str, Any]], component: str) -> dict[str, Any]:
    deploy = find(docs, "Deployment", f"-{component}")
    (container,) = deploy["spec"]["template"]["spec"]["containers"]
    return container


def _operator_config(docs: list[dict[str, Any]]) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(
        find(docs, "ConfigMap", "-operator")["data"]["config.yaml"]
    )
    return data


def _watcher_config(docs: list[dict[str, Any]], tmp_path: Path) -> WatcherConfig:
    """The watcher's settings as the watcher loads them: its file, then its environment."""
    path = tmp_path / "watcher.yaml"
    path.write_text(find(docs, "ConfigMap", "-watcher")["data"]["config.yaml"])
    return load_config(path, environ=_plain_env(_container(docs, "watcher")))


def _pod_specs(docs: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    specs = []
    for doc in docs:
        if doc["kind"] == "Deployment":
            specs.append((doc["metadata"]["name"], doc["spec"]["template"]["spec"]))
        elif doc["kind"] == "Pod":
            specs.append((doc["metadata"]["name"], doc["spec"]))
    return specs


def _mounts(container: dict[str, Any]) -> dict[str, str]:
    return {m["mountPath"]: m["name"] for m in container.get("volumeMounts", [])}


# ------------------------------------------------------------------------- CRDs


def test_chart_crds_are_copies_of_the_generated_crds() -> None:
    generated = sorted((ROOT / "crds").glob("*.yaml"))
    assert generated, "no generated CRDs in crds/"
    for src in generated:
        copy = CHART / "crds" / src.name
        assert copy.is_file(), f"{copy} missing: run scripts/sync-chart-crds"
        assert copy.read_bytes() == src.read_bytes(), (
            f"{copy} is stale: run scripts/sync-chart-crds"
        )
    extra = {p.name for p in (CHART / "crds").glob("*.yaml")} - {p.name for p in generated}
    assert extra == {"kopf-peerings.yaml"}


def test_sync_script_reports_in_sync() -> None:
    result = subprocess.run(
        [str(ROOT / "scripts" / "sync-chart-crds"), "--check"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr


def test_kopf_peering_crds_have_kopf_shape() -> None:
    docs = list(yaml.safe_load_all((CHART / "crds" / "kopf-peerings.yaml").read_text()))
    by_name = {d["metadata"]["name"]: d for d in docs}
    assert set(by_name) == {"clusterkopfpeerings.kopf.dev", "kopfpeerings.kopf.dev"}
    assert by_name["clusterkopfpeerings.kopf.dev"]["spec"]["scope"] == "Cluster"
    assert by_name["kopfpeerings.kopf.dev"]["spec"]["scope"] == "Namespaced"
    for doc in docs:
        (version,) = doc["spec"]["versions"]
        assert version["name"] == "v1"
        assert version["served"] and version["storage"]
        status = version["schema"]["openAPIV3Schema"]["properties"]["status"]
        # kopf keeps one record per operator identity there: arbitrary keys.
        assert status["x-kubernetes-preserve-unknown-fields"] is True


# ------------------------------------------------------------------------- lint and render


@pytest.mark.parametrize("name", VALUE_SET_NAMES)
def test_helm_lint_strict(helm: Helm, name: str) -> None:
    args = ["lint", "--strict", str(CHART)]
    if VALUE_SETS[name] is not None:
        args += ["--values", str(VALUE_SETS[name])]
    result = helm.run(*args)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 chart(s) failed" in result.stdout


def test_every_example_is_covered() -> None:
    expected = {"aws", "gcp", "minio", "local", "gpu-nvidia"}
    assert {p.stem for p in EXAMPLES.glob("*.yaml")} >= expected


@pytest.mark.parametrize("name", VALUE_SET_NAMES)
def test_renders_the_components(rendered: dict[str, str], name: str) -> None:
    docs = documents(rendered[name])
    kinds = {(d["kind"], d["metadata"]["name"]) for d in docs}
    expected = [
        ("Deployment", "-operator"),
        ("ConfigMap", "-operator"),
        ("ServiceAccount", "-operator"),
        ("ClusterRole", "-operator"),
        ("ClusterRoleBinding", "-operator"),
        ("Service", "-operator"),
        ("ClusterKopfPeering", RELEASE + "-stereo-operator"),
        ("Pod", "-test-health"),
    ]
    watcher = [
        ("Deployment", "-watcher"),
        ("ConfigMap", "-watcher"),
        ("ServiceAccount", "-watcher"),
        ("ClusterRole", "-watcher"),
        ("ClusterRoleBinding", "-watcher"),
        ("Service", "-watcher"),
    ]
    for kind, suffix in expected + (watcher if name in WITH_WATCHER else []):
        assert any(k == kind and n.endswith(suffix) for k, n in kinds), (kind, suffix)
    if name not in WITH_WATCHER:
        assert not any(n.endswith("-watcher") for _, n in kinds)
    crds = {d["metadata"]["name"] for d in docs if d["kind"] == "CustomResourceDefinition"}
    assert crds == {
        "videojobs.stereo.dev",
        "segments.stereo.dev",
        "clusterkopfpeerings.kopf.dev",
        "kopfpeerings.kopf.dev",
    }


@pytest.mark.parametrize("name", VALUE_SET_NAMES)
def test_objects_carry_recommended_labels(rendered: dict[str, str], name: str) -> None:
    for doc in documents(rendered[name]):
        if doc["kind"] == "CustomResourceDefinition":
            continue  # crds/ is not templated
        labels = doc["metadata"].get("labels", {})
        where = f"{doc['kind']}/{doc['metadata']['name']}"
        assert labels.get("app.kubernetes.io/name") == "stereo-operator", where
        assert labels.get("app.kubernetes.io/instance") == RELEASE, where
        assert labels.get("app.kubernetes.io/managed-by") == "Helm", where
        assert labels.get("app.kubernetes.io/part-of") == "stereo-operator", where
        assert labels.get("app.kubernetes.io/version"), where
        assert labels.get("helm.sh/chart", "").startswith("stereo-operator-"), where


def test_workloads_select_their_own_component(rendered: dict[str, str]) -> None:
    docs = documents(rendered["minio"])
    for component in ("operator", "watcher"):
        deploy = find(docs, "Deployment", f"-{component}")
        selector = deploy["spec"]["selector"]["matchLabels"]
        assert selector["app.kubernetes.io/component"] == component
        pod_labels = deploy["spec"]["template"]["metadata"]["labels"]
        assert selector.items() <= pod_labels.items()
        service = find(docs, "Service", f"-{component}")
        assert service["spec"]["selector"] == selector


# ------------------------------------------------------------------------- operator


@pytest.mark.parametrize("name", VALUE_SET_NAMES)
def test_operator_config_is_a_valid_operator_config(rendered: dict[str, str], name: str) -> None:
    """The ConfigMap is what OperatorConfig reads (it refuses unknown keys)."""
    config = OperatorConfig.model_validate(_operator_config(documents(rendered[name])))
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    path = VALUE_SETS[name]
    overrides = yaml.safe_load(path.read_text()) if path is not None else {}
    jobs = {**values["jobs"], **overrides.get("jobs", {})}
    inference = {**values["jobs"]["inference"], **overrides.get("jobs", {}).get("inference", {})}
    assert config.max_inflight == jobs["maxInflight"]
    assert config.queue_name == (jobs["queueName"] or None)
    assert config.cleanup_attempts == jobs["cleanupAttempts"]
    assert config.inference.gpus == inference["gpus"]
    assert config.inference.tolerations == inference["tolerations"]
    assert config.inference.node_selector == inference["nodeSelector"]
    assert config.media.gpus == 0
    # The heartbeat Lease the operator renews is the one its RBAC names.
    assert config.liveness.lease_name == f"{RELEASE}-stereo-operator-heartbeat"
    assert config.liveness.timeout_seconds == values["operator"]["liveness"]["timeoutSeconds"]


@pytest.mark.parametrize("name", VALUE_SET_NAMES)
def test_operator_env_is_understood_by_the_operator(
    rendered: dict[str, str], name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The operator reads its options from STEREO_OPERATOR_* variables: parse the rendered
    ones with its own argument parser."""
    docs = documents(rendered[name])
    container = _container(docs, "operator")
    env = _plain_env(container)
    for variable, value in env.items():
        monkeypatch.setenv(variable, value)
    args = build_parser().parse_args(container.get("args", []))
    assert args.liveness == "http://0.0.0.0:8080/healthz"
    assert not args.standalone
    assert args.peering == find(docs, "ClusterKopfPeering")["metadata"]["name"]
    assert args.priority is None  # each replica takes one from its start time
    assert args.metrics_port == 9090
    assert args.namespace == []
    assert env["STEREO_OPERATOR_CONFIG"] == "/etc/stereo-operator/config.yaml"
    assert args.log_format == ("text" if name == "local" else "json")
    assert args.verbose == (name == "local")
    unknown = {v for v in env if v.startswith("STEREO_OPERATOR_")} - {
        "STEREO_OPERATOR_CONFIG",
        "STEREO_OPERATOR_LIVENESS",
        "STEREO_OPERATOR_METRICS_PORT",
        "STEREO_OPERATOR_PEERING",
        "STEREO_OPERATOR_PEERING_LIFETIME",
        "STEREO_OPERATOR_LOG_FORMAT",
    }
    assert not unknown


def test_operator_options_for_standalone_priority_and_namespaces(
    helm: Helm, monkeypatch: pytest.MonkeyPatch
) -> None:
    docs = documents(
        helm.template(
            "--set", "operator.peering.enabled=false",
            "--set", "operator.metrics.enabled=false",
            "--set", "watchNamespaces={team-a,team-b}",
        )
    )  # fmt: skip
    for variable, value in _plain_env(_container(docs, "operator")).items():
        monkeypatch.setenv(variable, value)
    args = build_parser().parse_args([])
    assert args.standalone
    assert args.metrics_port == 0
    assert args.namespace == ["team-a", "team-b"]
    assert not any(d["kind"] in ("ClusterKopfPeering", "KopfPeering") for d in docs)
    assert not any(r[0] == "kopf.dev" for r in _rules(docs, "-operator"))

    monkeypatch.delenv("STEREO_OPERATOR_STANDALONE")
    docs = documents(
        helm.template(
            "--set", "operator.peering.priority=100",
            "--set", "watchNamespaces={team-a,team-b}",
        )
    )  # fmt: skip
    for variable, value in _plain_env(_container(docs, "operator")).items():
        monkeypatch.setenv(variable, value)
    args = build_parser().parse_args([])
    assert not args.standalone and args.priority == 100
    # Namespaced: kopf uses a KopfPeering in each served namespace.
    peerings = [d for d in docs if d["kind"] == "KopfPeering"]
    assert sorted(p["metadata"]["namespace"] for p in peerings) == ["team-a", "team-b"]
    assert {p["metadata"]["name"] for p in peerings} == {args.peering}
    rules = _rules(docs, "-operator")
    assert ("kopf.dev", "kopfpeerings", args.peering, "patch") in rules
    assert ("", "namespaces", "", "watch") in rules


def test_operator_config_file_is_mounted_and_named(rendered: dict[str, str]) -> None:
    docs = documents(rendered["default"])
    spec = find(docs, "Deployment", "-operator")["spec"]["template"]["spec"]
    container = _container(docs, "operator")
    path = _env(container)["STEREO_OPERATOR_CONFIG"]["value"]
    assert _mounts(container)[str(Path(path).parent)] == "config"
    volume = next(v for v in spec["volumes"] if v["name"] == "config")
    assert volume["configMap"]["name"] == find(docs, "ConfigMap", "-operator")["metadata"]["name"]


def test_config_change_rolls_the_deployments(helm: Helm) -> None:
    def checksums(*args: str) -> tuple[str, str]:
        docs = documents(helm.template(*MINIO, *args))
        annotations = [
            find(docs, "Deployment", f"-{c}")["spec"]["template"]["metadata"]["annotations"]
            for c in ("operator", "watcher")
        ]
        return annotations[0]["checksum/config"], annotations[1]["checksum/config"]

    base = checksums()
    assert checksums() == base
    assert checksums("--set", "jobs.maxInflight=3")[0] != base[0]
    assert checksums("--set", "watcher.maxConcurrency=3")[1] != base[1]


def test_workspace_uri_per_storage_kind(helm: Helm) -> None:
    cases = {
        ("s3", "--set", "storage.bucket=bkt"): "s3://bkt/stereo",
        ("gcs", "--set", "storage.bucket=bkt"): "gs://bkt/stereo",
        ("minio", "--set", "storage.bucket=bkt", "--set", "storage.endpoint=http://m:9000"): (
            "s3://bkt/stereo"
        ),
        ("file",): "file:///var/lib/stereo/workspace/stereo",
    }
    for (kind, *args), expected in cases.items():
        docs = documents(helm.template("--set", f"storage.kind={kind}", *args))
        assert _operator_config(docs)["workspace"] == expected, kind


@pytest.mark.parametrize("name", VALUE_SET_NAMES)
def test_jobs_receive_a_valid_storage_config(rendered: dict[str, str], name: str) -> None:
    """STEREO_STORAGE_CONFIG of the Jobs parses as a stereo_storage StorageConfig and says
    what the operator's own `storage` says (but for the Secret directory, mounted only in
    the operator)."""
    config = _operator_config(documents(rendered[name]))
    own = StorageConfig.model_validate(config["storage"])
    for template in ("inference", "media"):
        env = {e["name"]: e for e in config[template]["env"]}
        jobs = StorageConfig.model_validate_json(env["STEREO_STORAGE_CONFIG"]["value"])
        assert jobs.model_copy(update={"secret_dir": own.secret_dir}) == own


def test_credentials_never_in_plain_values_except_local() -> None:
    for path in EXAMPLES.glob("*.yaml"):
        values = yaml.safe_load(path.read_text())
        dev = values.get("storage", {}).get("devCredentials", {})
        if path.stem == "local":
            assert dev.get("accessKeyId")
        else:
            assert not dev.get("accessKeyId") and not dev.get("secretAccessKey"), path.name


def test_s3_secret_reaches_every_component(helm: Helm) -> None:
    docs = documents(helm.template(*MINIO, "--set", "storage.existingSecret=minio-keys"))
    ref = {"secretRef": {"name": "minio-keys"}}
    for component in ("operator", "watcher"):
        container = _container(docs, component)
        assert ref in container["envFrom"]
        assert _env(container)["AWS_ENDPOINT_URL_S3"]["value"] == "http://minio:9000"
    operator_mounts = _mounts(_container(docs, "operator"))
    assert operator_mounts["/var/run/secrets/stereo/storage"] == "storage-credentials"
    config = _operator_config(docs)
    assert config["storage"]["path_style"] is True
    assert config["storage"]["secret_dir"] == "/var/run/secrets/stereo/storage"
    assert ref in config["inference"]["envFrom"] and ref in config["media"]["envFrom"]
    assert not any(
        d["kind"] == "Secret" and d["metadata"]["name"].endswith("-storage") for d in docs
    )


def test_gcs_key_secret_is_mounted_not_exported(helm: Helm) -> None:
    docs = documents(
        helm.template(
            "--set", "storage.kind=gcs,storage.bucket=bkt,storage.existingSecret=gcs-key",
            "--set", "events.source=pubsub,events.pubsub.subscription=projects/p/subscriptions/s",
        )
    )  # fmt: skip
    for component in ("operator", "watcher"):
        container = _container(docs, component)
        assert "envFrom" not in container
        key = _env(container)["GOOGLE_APPLICATION_CREDENTIALS"]["value"]
        assert _mounts(container)[str(Path(key).parent)] == "storage-credentials"


def test_local_dev_credentials_become_a_secret(rendered: dict[str, str]) -> None:
    docs = documents(rendered["local"])
    secret = find(docs, "Secret", "-storage")
    assert set(secret["stringData"]) == {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}


def test_gpu_runtime_class_reaches_the_inference_jobs(rendered: dict[str, str]) -> None:
    config = OperatorConfig.model_validate(_operator_config(documents(rendered["gpu-nvidia"])))
    assert config.inference.runtime_class_name == "nvidia"
    assert config.media.runtime_class_name is None
    default = OperatorConfig.model_validate(_operator_config(documents(rendered["default"])))
    assert default.inference.runtime_class_name is None


def test_media_jobs_default_to_the_inference_image(rendered: dict[str, str]) -> None:
    config = _operator_config(documents(rendered["local"]))
    assert config["media"]["image"] == config["inference"]["image"] == "local/stereo-inference:dev"
    assert config["media"]["imagePullPolicy"] == "Never"


# ------------------------------------------------------------------------- watcher


@pytest.mark.parametrize("name", WITH_WATCHER)
def test_watcher_config_is_what_the_watcher_loads(
    rendered: dict[str, str], name: str, tmp_path: Path
) -> None:
    docs = documents(rendered[name])
    config = _watcher_config(docs, tmp_path)
    assert config.roots[0] == _operator_config(docs)["workspace"]
    container = _container(docs, "watcher")
    # Nothing but the file's name: other STEREO_WATCHER_* variables would override it.
    assert [v for v in _env(container) if v.startswith("STEREO_WATCHER_")] == [
        "STEREO_WATCHER_CONFIG"
    ]
    assert _mounts(container)[str(Path(_env(container)["STEREO_WATCHER_CONFIG"]["value"]).parent)]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["http"] == config.http.port


@pytest.mark.parametrize(
    ("name", "source"),
    [("aws", "sqs"), ("gcp", "pubsub"), ("minio", "minio"), ("local", "seaweedfs")],
)
def test_event_sources(rendered: dict[str, str], name: str, source: str, tmp_path: Path) -> None:
    docs = documents(rendered[name])
    config = _watcher_config(docs, tmp_path)
    container = _container(docs, "watcher")
    assert bool(config.sqs) == (source == "sqs")
    assert bool(config.pubsub) == (source == "pubsub")
    assert config.webhook.minio == (source == "minio")
    assert config.webhook.seaweedfs == (source == "seaweedfs")
    has_token = any(d["kind"] == "Secret" and "webhook" in d["metadata"]["name"] for d in docs)
    assert has_token == config.webhook.enabled
    if config.webhook.enabled:
        assert config.webhook.token_file is not None
        assert _mounts(container)[str(config.webhook.token_file.parent)] == "webhook-token"
    if source == "seaweedfs":
        # The filer never retries a failed post: events go through a spool on a volume.
        assert config.webhook.spool_dir is not None
        assert _mounts(container)[str(config.webhook.spool_dir)] == "spool"
    if source == "sqs":
        assert config.sqs[0].region == "us-east-1"


def test_file_storage_has_no_watcher(rendered: dict[str, str]) -> None:
    docs = documents(rendered["default"])
    assert not any(d["metadata"]["name"].endswith("-watcher") for d in docs)
    urls = find(docs, "Pod", "-test-health")["spec"]["containers"][0]["command"][3:]
    assert len(urls) == 1 and "-operator." in urls[0]


def test_generated_webhook_token(rendered: dict[str, str]) -> None:
    docs = documents(rendered["minio"])
    secret = find(docs, "Secret", "-webhook-token")
    assert len(secret["data"]["token"]) >= 48
    spec = find(docs, "Deployment", "-watcher")["spec"]["template"]["spec"]
    volume = next(v for v in spec["volumes"] if v["name"] == "webhook-token")
    assert volume["secret"]["secretName"] == secret["metadata"]["name"]


def test_existing_webhook_token_secret(helm: Helm) -> None:
    docs = documents(helm.template(*MINIO, "--set", "events.webhook.token.existingSecret=tok"))
    assert not any(d["kind"] == "Secret" for d in docs)
    spec = find(docs, "Deployment", "-watcher")["spec"]["template"]["spec"]
    volume = next(v for v in spec["volumes"] if v["name"] == "webhook-token")
    assert volume["secret"]["secretName"] == "tok"


def test_watcher_namespaces_and_extra_roots(helm: Helm, tmp_path: Path) -> None:
    docs = documents(
        helm.template(
            *MINIO,
            "--set", "watchNamespaces={team-a}",
            "--set", "watcher.extraRoots={s3://other/ws}",
        )
    )  # fmt: skip
    config = _watcher_config(docs, tmp_path)
    assert config.namespaces == ["team-a"]
    assert config.roots == ["s3://bkt/stereo", "s3://other/ws"]


# ------------------------------------------------------------------------- pod security


@pytest.mark.parametrize("name", VALUE_SET_NAMES)
def test_pods_meet_the_restricted_standard(rendered: dict[str, str], name: str) -> None:
    specs = _pod_specs(documents(rendered[name]))
    assert len(specs) == (3 if name in WITH_WATCHER else 2)  # + the test pod
    for where, spec in specs:
        pod_sc = spec["securityContext"]
        assert pod_sc["runAsNonRoot"] is True, where
        assert pod_sc["seccompProfile"] == {"type": "RuntimeDefault"}, where
        tmp = next(v for v in spec["volumes"] if v["name"] == "tmp")
        assert "emptyDir" in tmp, where
        for container in spec["containers"]:
            sc = container["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False, where
            assert sc["readOnlyRootFilesystem"] is True, where
            assert sc["runAsNonRoot"] is True, where
            assert sc["capabilities"] == {"drop": ["ALL"]}, where
            assert sc["seccompProfile"] == {"type": "RuntimeDefault"}, where
            assert _mounts(container)["/tmp"] == "tmp", where
            assert container["resources"]["limits"]["memory"], where


def test_probes_hit_the_health_endpoints(rendered: dict[str, str]) -> None:
    docs = documents(rendered["minio"])
    op = _container(docs, "operator")
    assert op["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    w = _container(docs, "watcher")
    assert w["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert w["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    test_pod = find(docs, "Pod", "-test-health")
    assert test_pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    urls = test_pod["spec"]["containers"][0]["command"][3:]
    assert urls == [
        f"http://{RELEASE}-stereo-operator-operator.{NAMESPACE}.svc:8080/healthz",
        f"http://{RELEASE}-stereo-operator-watcher.{NAMESPACE}.svc:8080/healthz",
    ]


# ------------------------------------------------------------------------- RBAC


def _rule_set(rules: list[dict[str, Any]]) -> set[Rule]:
    out = set()
    for rule in rules:
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                for name in rule.get("resourceNames", [""]):
                    out |= {(group, resource, name, verb) for verb in rule["verbs"]}
    return out


def _rules(docs: list[dict[str, Any]], suffix: str) -> set[Rule]:
    return _rule_set(find(docs, "ClusterRole", suffix)["rules"])


def _manifest_rules(path: Path) -> set[Rule]:
    rules: set[Rule] = set()
    for doc in yaml.safe_load_all(path.read_text()):
        if doc and doc.get("kind") in ("ClusterRole", "Role"):
            rules |= _rule_set(doc["rules"])
    return rules


def test_watcher_rbac_is_least_privilege(rendered: dict[str, str]) -> None:
    assert _rules(documents(rendered["minio"]), "-watcher") == {
        ("stereo.dev", "videojobs", "", "get"),
        ("stereo.dev", "videojobs", "", "list"),
        ("stereo.dev", "videojobs", "", "watch"),
        ("stereo.dev", "segments", "", "get"),
        ("stereo.dev", "segments/status", "", "patch"),
    }


def test_watcher_rbac_matches_the_watchers_own_manifest(rendered: dict[str, str]) -> None:
    """operator/stereo_operator/watcher/rbac.yaml is the watcher's own statement of what it
    needs: the chart grants exactly that."""
    own = ROOT / "operator" / "stereo_operator" / "watcher" / "rbac.yaml"
    assert _rules(documents(rendered["minio"]), "-watcher") == _manifest_rules(own)


def test_operator_rbac_covers_the_operators_own_manifest(helm: Helm) -> None:
    """operator/stereo_operator/manifests/rbac.yaml lists what the operator calls. The chart
    grants all of it, peering writes narrowed to the operator's own object, namespaces only
    when kopf follows some."""
    own = ROOT / "operator" / "stereo_operator" / "manifests" / "rbac.yaml"
    for namespaces in ([], ["team-a"]):
        args = ["--set", f"watchNamespaces={{{','.join(namespaces)}}}"] if namespaces else []
        docs = documents(helm.template(*args))
        granted = _rules(docs, "-operator")
        peering = find(docs, "ClusterKopfPeering" if not namespaces else "KopfPeering")
        name = peering["metadata"]["name"]
        for group, resource, _, verb in _manifest_rules(own):
            if group == "kopf.dev":
                kind = "kopfpeerings" if namespaces else "clusterkopfpeerings"
                if resource != kind:
                    continue  # the other scope's peering objects are never used
                if verb in ("get", "patch"):
                    assert (group, resource, name, verb) in granted, (resource, verb)
                    continue
            if resource == "namespaces" and not namespaces:
                assert not any(r[1] == "namespaces" for r in granted)
                continue
            if resource == "leases" and verb != "create":  # the heartbeat Lease only
                lease = f"{RELEASE}-stereo-operator-heartbeat"
                assert (group, resource, lease, verb) in granted, (resource, verb)
                continue
            assert (group, resource, "", verb) in granted, (group, resource, verb)


def test_operator_rbac_stays_narrow(rendered: dict[str, str]) -> None:
    rules = _rules(documents(rendered["default"]), "-operator")
    resources = {r[1] for r in rules}
    assert not {"secrets", "configmaps", "*"} & resources
    assert "*" not in {r[3] for r in rules} and "*" not in {r[0] for r in rules}
    # Users own their VideoJobs: the operator never creates or deletes one.
    assert not {("stereo.dev", "videojobs", "", v) for v in ("create", "delete")} & rules
    # Keep-alives go into its own peering object only, heartbeats into its own Lease.
    assert ("kopf.dev", "clusterkopfpeerings", "", "patch") not in rules
    assert not {("coordination.k8s.io", "leases", "", v) for v in ("patch", "watch")} & rules
    assert ("kopf.dev", "clusterkopfpeerings", f"{RELEASE}-stereo-operator", "patch") in rules


# ------------------------------------------------------------------------- monitoring, notes


def test_service_monitors(helm: Helm, rendered: dict[str, str]) -> None:
    assert not any(d["kind"] == "ServiceMonitor" for d in documents(rendered["default"]))
    docs = documents(rendered["aws"])
    monitors = {d["metadata"]["name"]: d for d in docs if d["kind"] == "ServiceMonitor"}
    assert set(monitors) == {
        f"{RELEASE}-stereo-operator-operator",
        f"{RELEASE}-stereo-operator-watcher",
    }
    for component, port in (("operator", "metrics"), ("watcher", "http")):
        monitor = monitors[f"{RELEASE}-stereo-operator-{component}"]
        assert monitor["spec"]["endpoints"][0]["port"] == port
        assert monitor["spec"]["endpoints"][0]["path"] == "/metrics"
        assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
        service = find(docs, "Service", f"-{component}")
        assert port in {p["name"] for p in service["spec"]["ports"]}
        assert monitor["spec"]["selector"]["matchLabels"] == service["spec"]["selector"]


def test_notes_render(helm: Helm) -> None:
    for name, values in VALUE_SETS.items():
        args = ["install", RELEASE, str(CHART), "--dry-run=client", "-n", NAMESPACE]
        if values is not None:
            args += ["--values", str(values)]
        result = helm.run(*args)
        assert result.returncode == 0, result.stderr
        assert "NOTES:" in result.stdout, name
        if name == "local":
            assert "WARNING: storage credentials come from plain-text values" in result.stdout
            assert "/events/seaweedfs" in result.stdout
        if name == "minio":
            assert "/events/minio" in result.stdout


# ------------------------------------------------------------------------- bad values


BAD_VALUES = [
    # (id, helm --set arguments, text expected in the error)
    ("wrong-type-int", ["--set-string", "operator.replicaCount=two"], "/operator/replicaCount"),
    ("wrong-type-bool", ["--set-string", "watcher.enabled=yes"], "/watcher/enabled"),
    ("wrong-type-list", ["--set", "jobs.inference.tolerations=no"], "/jobs/inference/tolerations"),
    ("unknown-top-key", ["--set", "replicas=2"], "'replicas' not allowed"),
    ("unknown-nested-key", ["--set", "jobs.inference.gpu=2"], "'gpu' not allowed"),
    ("unknown-toleration-key", ["--set", "jobs.inference.tolerations[0].keys=x"], "'keys' not"),
    ("bad-enum", ["--set", "storage.kind=azure"], "/storage/kind"),
    ("too-many-gpus", ["--set", "jobs.inference.gpus=17"], "/jobs/inference/gpus"),
    ("inflight-zero", ["--set", "jobs.maxInflight=0"], "/jobs/maxInflight"),
    ("s3-without-bucket", ["--set", "storage.kind=s3"], "/storage/bucket"),
    ("minio-no-endpoint", ["--set", "storage.kind=minio,storage.bucket=bkt"], "/storage/endpoint"),
    ("sqs-without-queue", ["--set", "events.source=sqs"], "/events/sqs/queueUrl"),
    ("bad-subscription", ["--set", "events.pubsub.subscription=stereo"], "/events/pubsub"),
    ("bad-quantity", ["--set", "jobs.inference.resources.limits.memory=lots"], "/jobs/inference"),
    ("short-visibility", ["--set", "events.sqs.visibilityTimeoutSeconds=20"], "/events/sqs"),
    ("bad-namespace", ["--set", "watchNamespaces={Team_A}"], "/watchNamespaces/0"),
    ("bad-log-format", ["--set", "operator.logFormat=xml"], "/operator/logFormat"),
    (
        "replicas-standalone",
        ["--set", "operator.peering.enabled=false,operator.replicaCount=2"],
        "/operator/replicaCount",
    ),
]  # fmt: skip


@pytest.mark.parametrize(
    ("args", "message"), [b[1:] for b in BAD_VALUES], ids=[b[0] for b in BAD_VALUES]
)
@pytest.mark.parametrize("command", ["lint", "template"])
def test_schema_rejects_bad_values(helm: Helm, command: str, args: list[str], message: str) -> None:
    if command == "lint":
        result = helm.run("lint", "--strict", str(CHART), *args)
    else:
        result = helm.run("template", RELEASE, str(CHART), *args)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert message in output, output


def test_schema_forbids_unknown_keys_everywhere() -> None:
    """Every object in values.schema.json that lists properties also closes them."""
    schema = json.loads((CHART / "values.schema.json").read_text())
    open_objects: list[str] = []

    def walk(node: Any, where: str) -> None:
        if isinstance(node, dict):
            # if/then branches only narrow properties that are closed elsewhere.
            if (
                "properties" in node
                and node.get("additionalProperties") is not False
                and not {"if", "then", "allOf"} & set(where.split("/"))
            ):
                open_objects.append(where)
            for key, value in node.items():
                walk(value, f"{where}/{key}")
        elif isinstance(node, list):
            for i, value in enumerate(node):
                walk(value, f"{where}/{i}")

    walk(schema, "")
    assert not open_objects, open_objects


def test_values_yaml_matches_the_schema_top_level() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    schema = json.loads((CHART / "values.schema.json").read_text())
    assert set(values) == set(schema["properties"]) - {"global"}


def _leaves(values: Any, prefix: str = "") -> list[str]:
    if isinstance(values, dict) and values:
        out = []
        for key, value in values.items():
            out += _leaves(value, f"{prefix}.{key}" if prefix else key)
        return out
    return [prefix]


@pytest.mark.parametrize("name", WITH_WATCHER)
def test_example_values_only_use_known_keys(name: str) -> None:
    """Redundant with the schema, but names the key: each example's keys exist in values.yaml
    (or lie under a free-form map there)."""
    defaults = yaml.safe_load((CHART / "values.yaml").read_text())
    example = yaml.safe_load(Path(str(VALUE_SETS[name])).read_text())
    for leaf in _leaves(example):
        node: Any = defaults
        for part in leaf.split("."):
            if isinstance(node, dict) and node == {}:
                break  # a free-form map in values.yaml (labels, nodeSelector, annotations...)
            assert isinstance(node, dict) and part in node, f"{name}: {leaf}"
            node = node[part]
