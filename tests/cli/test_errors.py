"""Every error stereoctl promises, each against a real API server: one line, its own code."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from kubernetes import client

from stereo_cluster.controlplane import LocalControlPlane
from stereo_types.formats import OutputFormat
from stereoctl.errors import (
    ClusterUnreachable,
    CrdsMissing,
    InputError,
    NotFound,
    OperatorNotRunning,
)
from tests.cli.cli import run, write_config
from tests.operator.harness import ClusterAccess
from tests.servers.process import free_port

pytest_plugins = ["tests.operator.harness"]
pytestmark = pytest.mark.cluster


@pytest.fixture
def config(cluster_access: ClusterAccess, namespace: str, tmp_path: Path) -> Path:
    return write_config(tmp_path / "stereoctl.yaml", cluster_access.admin, namespace)


@pytest.fixture(scope="module")
def bare_api_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A second, real control plane where no CRD was ever installed; its admin kubeconfig."""
    plane = LocalControlPlane(tmp_path_factory.mktemp("bare"))
    state = plane.start()
    try:
        yield Path(state.kubeconfig)
    finally:
        plane.stop()


def test_a_missing_file_is_named(config: Path, tmp_path: Path) -> None:
    missing = tmp_path / "no-such-video.mp4"
    result = run("submit", str(missing), config=config)
    result.assert_one_line_error(InputError.exit_code, f"file not found: {missing}")


def test_an_unsupported_format_lists_the_valid_ones(config: Path, media: dict) -> None:
    result = run("submit", str(media["4s"]), "--format", "3d-glasses", config=config)
    result.assert_one_line_error(
        InputError.exit_code,
        "format: must be one of",
        *(fmt.value for fmt in OutputFormat),
        "not '3d-glasses'",
    )


def test_an_out_of_range_setting_names_the_field(config: Path, media: dict) -> None:
    result = run("submit", str(media["4s"]), "--divergence", "50", config=config)
    result.assert_one_line_error(
        InputError.exit_code, "stereo.divergence: must be a number > 0 and <= 10, not 50"
    )


def test_an_invalid_name_is_refused_before_any_upload(config: Path, media: dict) -> None:
    result = run("submit", str(media["4s"]), "--name", "Holiday_Clip", config=config)
    result.assert_one_line_error(InputError.exit_code, "invalid --name", "'Holiday_Clip'")
    long_name = "x" * 41
    result = run("submit", str(media["4s"]), "--name", long_name, config=config)
    result.assert_one_line_error(InputError.exit_code, "at most 40 characters")


def test_no_cluster_reachable(cluster_access: ClusterAccess, tmp_path: Path) -> None:
    # The real admin kubeconfig, pointed at a port where no API server listens.
    data = yaml.safe_load(cluster_access.admin.read_text())
    dead = f"https://127.0.0.1:{free_port()}"
    data["clusters"][0]["cluster"]["server"] = dead
    kubeconfig = tmp_path / "dead.kubeconfig"
    kubeconfig.write_text(yaml.safe_dump(data))
    config = write_config(tmp_path / "stereoctl.yaml", kubeconfig, "default")
    result = run("list", config=config, timeout=120)
    result.assert_one_line_error(ClusterUnreachable.exit_code, f"no cluster reachable at {dead}")


def test_no_kubeconfig_at_all(tmp_path: Path) -> None:
    missing = tmp_path / "absent.kubeconfig"
    result = run("--kubeconfig", str(missing), "list", config=tmp_path / "none.yaml")
    result.assert_one_line_error(InputError.exit_code, "config file not found")
    (tmp_path / "empty.yaml").write_text("")
    result = run("--kubeconfig", str(missing), "list", config=tmp_path / "empty.yaml")
    result.assert_one_line_error(ClusterUnreachable.exit_code, "no usable kubeconfig", str(missing))


def test_crds_missing(bare_api_server: Path, tmp_path: Path) -> None:
    config = write_config(tmp_path / "stereoctl.yaml", bare_api_server, "default")
    for args in (["list"], ["status", "anything"], ["submit", "s3://bucket/video.mp4"]):
        result = run(*args, config=config)
        result.assert_one_line_error(
            CrdsMissing.exit_code, "does not serve stereo.dev/v1alpha1", "install the CRDs"
        )


def test_operator_not_running(
    config: Path, api: client.ApiClient, namespace: str, media: dict
) -> None:
    """CRDs installed, no operator watching the namespace: the VideoJob is never picked up."""
    source = media["4s"].as_uri()
    result = run("submit", source, "--name", "orphan", "--pickup-timeout", "3", config=config)
    result.assert_one_line_error(
        OperatorNotRunning.exit_code,
        f"the operator did not pick up VideoJob {namespace}/orphan within 3s",
    )
    assert f"videojob {namespace}/orphan created" in result.stdout
    created = client.CustomObjectsApi(api).get_namespaced_custom_object(
        "stereo.dev", "v1alpha1", namespace, "videojobs", "orphan"
    )
    assert created["spec"]["source"] == source
    assert "status" not in created or not created["status"]
    shown = run("status", "orphan", config=config)
    assert shown.code == 0, shown
    assert "not picked up by the operator" in shown.stdout


def test_unknown_videojob(config: Path, namespace: str) -> None:
    for command in ("status", "logs", "cancel"):
        result = run(command, "ghost", config=config)
        result.assert_one_line_error(NotFound.exit_code, f"{namespace}/ghost", "not found")
    result = run("get", "ghost", "-o", "/tmp/ghost.mp4", config=config)
    result.assert_one_line_error(NotFound.exit_code, "ghost")


def test_an_unknown_context(config: Path) -> None:
    result = run("--context", "elsewhere", "list", config=config)
    result.assert_one_line_error(
        ClusterUnreachable.exit_code, "context 'elsewhere' is not in the kubeconfig"
    )
