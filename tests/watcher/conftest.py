"""The watcher's integration environment, started once per session: the CRDs, the
watcher's ServiceAccount and ClusterRole from rbac.yaml, moto (S3 + SQS), fake-gcs-server
with the Pub/Sub emulator, SeaweedFS posting filer webhooks, and the watcher itself as a
subprocess holding only a token of its ServiceAccount."""

from __future__ import annotations

import secrets
import subprocess
import sys
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from tests.integration.kube import eventually
from tests.servers import (
    FakeGcsServer,
    ManagedServer,
    MotoServer,
    PubSubEmulator,
    SeaweedFS,
    free_port,
)

from .channels import Channel, MinioChannel, PubSubChannel, SeaweedFsChannel, SqsChannel
from .harness import ROOT, RecordingProxy, WatcherProcess, watcher_kubeconfig

PROJECT = "watcher-test"
SOURCES = ["sqs", "pubsub", "minio-webhook", "seaweedfs-webhook"]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """On failure, attach the watcher's log tail."""
    report = yield
    if report.failed:
        env = getattr(item, "funcargs", {}).get("env")
        if isinstance(env, WatcherEnv):
            report.sections.append(("watcher log", env.watcher.log_tail(120)))
            for server in env.servers:
                if server.tmpdir is not None:
                    report.sections.append((f"{server.name} log", server.log_tail(30)))
    return report


@pytest.fixture(scope="session")
def watcher_crds(kubeconfig: Path, api: client.ApiClient) -> None:
    applied = subprocess.run(
        [
            str(Path(sys.executable).parent / "kubectl"),
            f"--kubeconfig={kubeconfig}",
            "apply",
            "--server-side",
            "--force-conflicts",
            "-f",
            str(ROOT / "crds"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert applied.returncode == 0, applied.stderr
    ext = client.ApiextensionsV1Api(api)

    def established() -> bool:
        names = ("videojobs.stereo.dev", "segments.stereo.dev")
        conds = [
            c for n in names for c in ext.read_custom_resource_definition(n).status.conditions or []
        ]
        return sum(c.type == "Established" and c.status == "True" for c in conds) == 2

    eventually(established, 30, "the CRDs to be Established")


@pytest.fixture(scope="session")
def watcher_identity(
    watcher_crds: None,
    api: client.ApiClient,
    kubeconfig: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Path:
    """A kubeconfig holding a token of the stereo-watcher ServiceAccount (rbac.yaml)."""
    return watcher_kubeconfig(api, kubeconfig, tmp_path_factory.mktemp("identity") / "kubeconfig")


class WatcherEnv:
    def __init__(
        self,
        watcher: WatcherProcess,
        token: str,
        channels: dict[str, Channel],
        servers: list[ManagedServer],
        kubeconfig: Path,
    ) -> None:
        self.watcher = watcher
        self.token = token
        self.channels = channels
        self.servers = servers
        self.kubeconfig = kubeconfig

    def restart_on_a_fresh_subscription(self) -> None:
        """Restart the watcher with a new Pub/Sub subscription (see new_subscription)."""
        channel = self.channels["pubsub"]
        assert isinstance(channel, PubSubChannel)
        self.watcher.stop()
        channel.subscription = channel.new_subscription()
        self.watcher.config["pubsub"][0]["subscription"] = channel.subscription
        self.watcher.write_config()
        self.watcher.start()


@pytest.fixture(scope="session")
def env(
    watcher_identity: Path, kubeconfig: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WatcherEnv]:
    workdir = tmp_path_factory.mktemp("watcher")
    token = secrets.token_urlsafe(24)
    (workdir / "token").write_text(token + "\n")
    port = free_port()
    started: list[ManagedServer] = []
    proxy = RecordingProxy(f"http://127.0.0.1:{port}")
    try:
        moto = MotoServer().start()
        started.append(moto)
        emulator = PubSubEmulator().start()
        started.append(emulator)
        gcs = FakeGcsServer(pubsub=emulator, project=PROJECT, topic="gcs-events").start()
        started.append(gcs)
        seaweedfs = SeaweedFS(
            webhook_url=f"{proxy.url}/events/seaweedfs",
            webhook_options={
                "bearer_token": token,
                "event_types": ["create", "update", "delete", "rename"],
                # weed 4.48 dead-letters a failed post at once whatever these say.
                "max_retries": 10,
                "backoff_seconds": 1,
                "max_backoff_seconds": 2,
                "timeout_seconds": 10,
            },
        ).start()
        started.append(seaweedfs)
        sqs = SqsChannel(moto)
        pubsub = PubSubChannel(gcs)
        config: dict[str, Any] = {
            "roots": [
                f"{c.scheme}://{c.bucket}/ws"
                for c in (SqsChannel, PubSubChannel, MinioChannel, SeaweedFsChannel)
            ]
            + [f"s3://{SqsChannel.direct_bucket}/ws", f"s3://{SqsChannel.eventbridge_bucket}/ws"],
            "sqs": [
                {
                    "queueUrl": sqs.queue_url,
                    "endpointUrl": moto.endpoint_url,
                    "region": moto.region,
                    "waitTimeSeconds": 5,
                    "visibilityTimeoutSeconds": 4,
                    "retryDelaySeconds": 1,
                    "maxRetryDelaySeconds": 2,
                }
            ],
            "pubsub": [{"subscription": pubsub.subscription, "maxLeaseExtensionSeconds": 10}],
            "webhook": {
                "tokenFile": str(workdir / "token"),
                "retryBudgetSeconds": 1.5,
                "spoolDir": str(workdir / "spool"),
            },
            "http": {"host": "127.0.0.1", "port": port},
            "kubernetes": {
                "kubeconfig": str(watcher_identity),
                "requestTimeoutSeconds": 1.5,
                "probeIntervalSeconds": 0.5,
                "readyWindowSeconds": 2,
            },
            "retry": {
                "initialBackoffSeconds": 0.1,
                "maxBackoffSeconds": 0.5,
                "queueBudgetSeconds": 2,
            },
            "pendingSegmentGraceSeconds": 8,
            "shutdownGraceSeconds": 8,
        }
        process_env = {
            "AWS_ACCESS_KEY_ID": moto.access_key,
            "AWS_SECRET_ACCESS_KEY": moto.secret_key,
            "AWS_DEFAULT_REGION": moto.region,
            "PUBSUB_EMULATOR_HOST": emulator.host,
            # Notifications without payload: the watcher reads the object's size.
            "STORAGE_EMULATOR_HOST": gcs.endpoint_url,
        }
        watcher = WatcherProcess(workdir, config, process_env)
        channels: dict[str, Channel] = {
            "sqs": sqs,
            "pubsub": pubsub,
            "minio-webhook": MinioChannel(moto, watcher, token),
            "seaweedfs-webhook": SeaweedFsChannel(seaweedfs, proxy, watcher, token),
        }
        watcher.start()
        try:
            yield WatcherEnv(watcher, token, channels, started, kubeconfig)
        finally:
            watcher.stop()
    finally:
        proxy.close()
        for server in reversed(started):
            server.stop()


@pytest.fixture(params=SOURCES)
def channel(request: pytest.FixtureRequest, env: WatcherEnv) -> Channel:
    return env.channels[request.param]
