"""Real storage servers for the storage tests, started once per session.

Only the servers a selected test needs are started (fixtures are lazy), so
``-k file`` runs without Java or Go binaries.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from stereo_storage import ObjectStore, StorageConfig, open_store
from tests.servers import (
    FakeGcsServer,
    ManagedServer,
    MotoServer,
    PubSubEmulator,
    SeaweedFS,
    WebhookReceiver,
)

MiB = 1024 * 1024
# Low thresholds so a 12 MiB file exercises multipart / resumable uploads.
THRESHOLDS = {"multipart_threshold": 5 * MiB, "multipart_chunksize": 5 * MiB}
GCS_CHUNK = 1 * MiB
BUCKET = "stereo-test"
PROJECT = "stereo-test"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """On failure, attach the log tail of every server the test used."""
    report = yield
    if report.failed:
        for value in getattr(item, "funcargs", {}).values():
            servers = getattr(value, "servers", ())
            for server in (value, *servers):
                if isinstance(server, ManagedServer) and server.tmpdir is not None:
                    report.sections.append((f"{server.name} log", server.log_tail()))
    return report


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    with MotoServer() as server:
        server.client("s3").create_bucket(Bucket=BUCKET)
        yield server


@pytest.fixture(scope="session")
def webhook() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as receiver:
        yield receiver


@pytest.fixture(scope="session")
def seaweedfs(webhook: WebhookReceiver) -> Iterator[SeaweedFS]:
    server = SeaweedFS(
        webhook_url=f"{webhook.url}/seaweedfs",
        webhook_options={"event_types": ["create", "update", "delete", "rename"]},
        buckets=[BUCKET],
    )
    with server:
        yield server


@pytest.fixture(scope="session")
def pubsub() -> Iterator[PubSubEmulator]:
    with PubSubEmulator() as server:
        yield server


@pytest.fixture(scope="session")
def fake_gcs(pubsub: PubSubEmulator) -> Iterator[FakeGcsServer]:
    with FakeGcsServer(pubsub=pubsub, project=PROJECT, topic="gcs-events") as server:
        server.create_bucket(BUCKET)
        yield server


@pytest.fixture(scope="session")
def gcs_signing_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A mounted-Secret-like directory holding a throwaway service-account key."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    directory = tmp_path_factory.mktemp("gcs-secret")
    info = {
        "type": "service_account",
        "project_id": PROJECT,
        "private_key_id": "test-key",
        "private_key": pem,
        "client_email": f"signer@{PROJECT}.iam.gserviceaccount.com",
        "client_id": "1",
        "token_uri": "https://oauth2.googleapis.com/token",
    }
    (directory / "key.json").write_text(json.dumps(info))
    return directory


def file_uri(path: Path) -> str:
    """file:// URIs carry the path verbatim, like s3:// and gs:// keys."""
    return f"file://{path}"


@dataclass
class Backend:
    name: str
    store: ObjectStore
    config: StorageConfig
    root: str  # a fresh prefix URI ending in "/", unique to the test
    server: ManagedServer | None

    @property
    def servers(self) -> tuple[ManagedServer, ...]:
        return (self.server,) if self.server is not None else ()

    def uri(self, key: str) -> str:
        return self.root + key


def s3_config(server: MotoServer | SeaweedFS, **extra: object) -> StorageConfig:
    values: dict[str, object] = {
        "endpoint_url": server.endpoint_url,
        "region": server.region,
        "path_style": True,
        **THRESHOLDS,
        **extra,
    }
    return StorageConfig.model_validate(values)


BACKENDS = ["moto", "seaweedfs", "gcs", "file"]


@pytest.fixture(params=BACKENDS)
def backend(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Backend]:
    name: str = request.param
    test_prefix = f"t-{uuid.uuid4().hex[:12]}/"
    server: ManagedServer | None
    if name in ("moto", "seaweedfs"):
        server = request.getfixturevalue("moto_server" if name == "moto" else "seaweedfs")
        assert isinstance(server, MotoServer | SeaweedFS)
        # Credentials arrive the way a pod gets them: from the environment.
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", server.access_key)
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", server.secret_key)
        config = s3_config(server)
        root = f"s3://{BUCKET}/{test_prefix}"
    elif name == "gcs":
        server = request.getfixturevalue("fake_gcs")
        assert isinstance(server, FakeGcsServer)
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", server.endpoint_url)
        config = StorageConfig(
            **THRESHOLDS,
            gcs_chunk_size=GCS_CHUNK,
            secret_dir=request.getfixturevalue("gcs_signing_dir"),
        )
        root = f"gs://{BUCKET}/{test_prefix}"
    else:
        server = None
        volume = tmp_path_factory.mktemp("volume")
        config = StorageConfig(local_root=volume, **THRESHOLDS)
        root = file_uri(volume / test_prefix) + "/"
    with open_store(root, config) as store:
        yield Backend(name, store, config, root, server)
