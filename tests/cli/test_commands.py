"""Each stereoctl command against the real local cluster, with the real operator running.

One module-wide namespace and operator: a file:// store job is submitted with --wait once and
the reading commands (list, status, get, logs) look at it; the S3 upload runs against a real
moto server; cancel stops a job that is still converting.
"""

from __future__ import annotations

import ipaddress
import json
import re
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from kubernetes import client

from stereo_cluster.controlplane import ClusterState
from stereoctl.errors import CliError, JobFailed
from tests.cli.cli import Result, run, write_config
from tests.operator.harness import (
    FAULT_INFER,
    ClusterAccess,
    Harness,
    active,
    file_path,
    frame_count,
)
from tests.servers import MotoServer
from tests.servers.process import free_port

pytest_plugins = ["tests.operator.harness"]
pytestmark = pytest.mark.cluster

BUCKET = "stereoctl-uploads"


class GatewayMoto(MotoServer):
    """moto on the first node's bridge gateway: pods have their own network namespaces and
    cannot reach the host's 127.0.0.1, but they route to the gateway."""

    def __init__(self, host: str) -> None:
        super().__init__()
        self.host = host

    @property
    def endpoint_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def _allocate_ports(self) -> None:
        self.port = free_port(self.host)

    def _command(self) -> list[str]:
        return [sys.executable, "-m", "moto.server", "-H", self.host, "-p", str(self.port)]


def _gateway(admin: Path) -> str:
    state = ClusterState.load(admin.parent)
    assert state is not None and state.cidrs is not None, "the cluster has no pod network"
    return str(ipaddress.IPv4Network(state.cidrs.node(1)).network_address + 1)


@dataclass(frozen=True)
class World:
    harness: Harness
    moto: MotoServer
    file_config: Path
    s3_config: Path
    tmp: Path


@dataclass(frozen=True)
class Finished:
    """The job submitted with --wait: its name, what submit printed, the file it saved."""

    name: str
    result: Result
    saved: Path
    source: Path


def _template(harness: Harness, moto: MotoServer) -> dict:
    # Jobs reach moto for s3:// sources the way the chart configures them.
    storage = json.dumps({"endpoint_url": moto.endpoint_url, "path_style": True})
    env = [
        {"name": "STEREO_TEST_FAULTS", "value": str(harness.faults)},
        {"name": "STEREO_STORAGE_CONFIG", "value": storage},
        *({"name": k, "value": v} for k, v in moto.env.items()),
    ]
    return {
        "command": [sys.executable, str(FAULT_INFER)],
        "gpus": 0,
        "tolerations": [],
        "env": env,
        "ttlSecondsAfterFinished": 600,
    }


@pytest.fixture(scope="module")
def world(
    cluster_access: ClusterAccess,
    api: client.ApiClient,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[World]:
    core = client.CoreV1Api(api)
    namespace = f"t-cli-{uuid.uuid4().hex[:6]}"
    core.create_namespace({"metadata": {"name": namespace}})
    tmp = tmp_path_factory.mktemp("cli")
    harness = Harness(cluster_access, api, namespace, tmp)
    harness.workspace.mkdir()
    harness.faults.mkdir()
    try:
        with GatewayMoto(_gateway(cluster_access.admin)) as moto:
            moto.client("s3").create_bucket(Bucket=BUCKET)
            template = _template(harness, moto)
            harness.write_config(inference=template, media=template)
            harness.start_operator()
            file_config = write_config(
                tmp / "file.yaml",
                cluster_access.admin,
                namespace,
                root=(tmp / "store").as_uri(),
            )
            s3_config = write_config(
                tmp / "s3.yaml",
                cluster_access.admin,
                namespace,
                root=f"s3://{BUCKET}/stereo",
                endpoint=moto.endpoint_url,
                region=moto.region,
                pathStyle=True,
                accessKeyId=moto.access_key,
                secretAccessKey=moto.secret_key,
            )
            yield World(harness, moto, file_config, s3_config, tmp)
    finally:
        harness.teardown()
        core.delete_namespace(namespace)


@pytest.fixture(scope="module")
def finished(world: World, media: dict) -> Finished:
    source = media["4s"]
    saved = world.tmp / "out" / "film.mp4"
    result = run(
        "submit", str(source), "--name", "film", "--format", "half-sbs", "--backend", "stub",
        "--segment-seconds", "1", "--parallelism", "2", "--divergence", "3.5",
        "--completion-grace-seconds", "0", "--wait", "-o", str(saved),
        config=world.file_config,
    )  # fmt: skip
    return Finished("film", result, saved, source)


def test_submit_uploads_waits_and_downloads(world: World, finished: Finished) -> None:
    result = finished.result
    assert result.code == 0, (result, world.harness.logs())
    assert f"videojob {world.harness.namespace}/film created" in result.stdout
    assert f"saved {finished.saved}" in result.stdout
    # The progress display went to stderr: the upload bar and the segments bar.
    # Every byte was reported: the bar ends at the file's size, e.g. "12.3/12.3 kB".
    assert re.search(r"upload four\.mp4 \S+ (\S+)/\1 [kM]?B", result.stderr), result.stderr
    assert "film Succeeded" in result.stderr and "4/4" in result.stderr

    vj = world.harness.videojob("film")
    assert vj is not None
    spec = vj["spec"]
    uploaded = world.tmp / "store" / "_uploads" / world.harness.namespace / "film" / "four.mp4"
    assert spec["source"] == uploaded.as_uri()
    assert uploaded.read_bytes() == finished.source.read_bytes()
    assert (spec["format"], spec["segmentSeconds"], spec["parallelism"]) == ("half-sbs", 1, 2)
    assert spec["stereo"]["divergence"] == 3.5
    assert spec["backend"] == {"type": "stub", "engine": "copy"}
    assert spec["timeouts"]["completionGraceSeconds"] == 0
    output = file_path(vj["status"]["outputUri"])
    assert finished.saved.read_bytes() == output.read_bytes()
    assert frame_count(finished.saved) == frame_count(finished.source)


def test_list(world: World, finished: Finished) -> None:
    result = run("list", config=world.file_config)
    assert result.code == 0, result
    row = next(line for line in result.stdout.splitlines() if line.startswith("film "))
    assert row.split()[:4] == ["film", "Succeeded", "4/4", "half-sbs"]


def test_status_shows_conditions_and_every_segment(world: World, finished: Finished) -> None:
    result = run("status", "film", config=world.file_config)
    assert result.code == 0, result
    out = result.stdout
    assert "Succeeded" in out and "4/4 done, 0 in flight, 0 failed" in out
    assert "CONDITION" in out
    rows = [line.split() for line in out.splitlines() if line.split()[:2][-1:] == ["Completed"]]
    assert [row[0] for row in rows] == ["0", "1", "2", "3"], out
    for row in rows:
        assert row[2] == "1", row  # attempts
        assert row[3].endswith("s"), row  # a duration such as 2s
        assert row[4].startswith("film-"), row  # the inference Job


def test_get_downloads_the_output(world: World, finished: Finished) -> None:
    target = world.tmp / "again.mp4"
    result = run("get", "film", "-o", str(target), config=world.file_config)
    assert result.code == 0, result
    assert target.read_bytes() == finished.saved.read_bytes()


def test_logs_of_the_media_jobs(world: World, finished: Finished) -> None:
    """Through the API server's pods/log, which the node serves (as a kubelet does)."""
    result = run("logs", "film", config=world.file_config)
    assert result.code == 0, result
    split_job = world.harness.jobs("split", "film")[0].metadata.name
    assemble_job = world.harness.jobs("assemble", "film")[0].metadata.name
    assert f"Job {split_job}, pod {split_job}-" in result.stdout
    assert f"Job {assemble_job}, pod {assemble_job}-" in result.stdout


def test_logs_of_one_segment(world: World, finished: Finished) -> None:
    result = run("logs", "film", "--segment", "2", config=world.file_config)
    assert result.code == 0, result
    job = world.harness.segments("film")[2]["status"]["jobName"]
    assert f"Job {job}, pod {job}-" in result.stdout
    missing = run("logs", "film", "--segment", "9", config=world.file_config)
    missing.assert_one_line_error(7, "VideoJob film has no segment 9")


def test_submit_wait_reports_a_failed_job(world: World, media: dict) -> None:
    """The plan Job rejects its input (exit 3 fails its Job at once): --wait ends with the
    VideoJob's message and the JobFailed exit code, and downloads nothing."""
    world.harness.set_faults("broken", {"plan": "fail:3"})
    saved = world.tmp / "broken.mp4"
    result = run(
        "submit", media["4s"].as_uri(), "--name", "broken", "--backend", "stub", "--wait",
        "-o", str(saved), config=world.file_config,
    )  # fmt: skip
    result.assert_one_line_error(JobFailed.exit_code, "VideoJob broken failed: ")
    message = world.harness.videojob("broken")["status"]["message"]
    assert message and " ".join(message.split()) in result.stderr
    assert not saved.exists()


def test_get_refuses_an_unfinished_job(world: World, media: dict) -> None:
    world.harness.set_faults("slow", {"plan": "sleep:60"})
    submitted = run(
        "submit", media["4s"].as_uri(), "--name", "slow", "--backend", "stub",
        config=world.file_config,
    )  # fmt: skip
    assert submitted.code == 0, submitted
    result = run("get", "slow", "-o", str(world.tmp / "slow.mp4"), config=world.file_config)
    result.assert_one_line_error(CliError.exit_code, "VideoJob slow is", "once Succeeded")
    assert run("cancel", "slow", config=world.file_config).code == 0


def test_submit_to_an_s3_store(world: World, media: dict) -> None:
    """The upload goes to the S3 store of the config file (a real moto server), and the
    operator's Jobs read the source from there."""
    saved = world.tmp / "s3-out.mp4"
    result = run(
        "submit", str(media["4s"]), "--name", "cloud", "--backend", "stub",
        "--segment-seconds", "2", "--completion-grace-seconds", "0", "--wait", "-o", str(saved),
        config=world.s3_config,
    )  # fmt: skip
    assert result.code == 0, (result, world.harness.logs())
    key = f"stereo/_uploads/{world.harness.namespace}/cloud/four.mp4"
    body = world.moto.client("s3").get_object(Bucket=BUCKET, Key=key)["Body"].read()
    assert body == media["4s"].read_bytes()
    vj = world.harness.videojob("cloud")
    assert vj is not None and vj["spec"]["source"] == f"s3://{BUCKET}/{key}"
    assert frame_count(saved) == frame_count(media["4s"])


def test_cancel_stops_a_running_job(world: World, media: dict) -> None:
    harness = world.harness
    harness.set_faults("doomed", {"convert": {"*": {"*": "sleep:120"}}})
    submitted = run(
        "submit", media["4s"].as_uri(), "--name", "doomed", "--backend", "stub",
        "--segment-seconds", "1", config=world.file_config,
    )  # fmt: skip
    assert submitted.code == 0, submitted
    harness.wait(
        lambda: [j for j in harness.jobs("inference", "doomed") if active(j)],
        120,
        "an inference Job of doomed to run",
    )
    result = run("cancel", "doomed", config=world.file_config)
    assert result.code == 0, (result, harness.logs())
    assert f"videojob {harness.namespace}/doomed cancelled" in result.stdout
    assert harness.videojob("doomed") is None
    assert not [j for j in harness.jobs("inference", "doomed") if active(j)]
