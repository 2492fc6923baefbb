"""The operator and the watcher together, on SeaweedFS: completions from storage events.

Everything is a real process: the operator (its own identity), the watcher (a token of its
ServiceAccount from rbac.yaml), SeaweedFS (S3 for the workspace, its filer's webhook posting
every change), and the inference Jobs, run by the node agent, reading and writing the S3
bucket. SeaweedFS listens on the node's bridge gateway so pods in their own network
namespace reach it. The filer's posts go through a relay that can deliver each one twice or
lose the ones of a chosen segment, so the tests can show that a duplicated event changes
nothing and that a lost one is made good by the operator's own check (source `reconcile`).
The completion grace period is long, so only the watcher can have completed the others.
"""

from __future__ import annotations

import collections
import ipaddress
import json
import secrets
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from stereo_types.layout import split_uri
from tests.operator.fault_infer import FAULTS_ENV
from tests.operator.harness import (
    FAULT_INFER,
    ClusterAccess,
    Harness,
    audio_duration,
    frame_count,
    operator_requests,
)
from tests.servers import SeaweedFS, free_port
from tests.watcher.harness import WATCHER_NAMESPACE, WATCHER_SA, WatcherProcess, watcher_kubeconfig

pytest_plugins = ["tests.operator.harness"]
pytestmark = pytest.mark.cluster

BUCKET = "films"
WEBHOOK_SOURCE = "seaweedfs-webhook"
WATCHER_USER = f"system:serviceaccount:{WATCHER_NAMESPACE}:{WATCHER_SA}"
LONG_GRACE_SECONDS = 600


@dataclass
class Relay:
    """Between the filer and the watcher: forwards each webhook post, or each twice, or
    drops the posts whose key `lose` picks (answering 200, as a post lost on the way would
    look to nobody)."""

    target: str
    twice: bool = False
    lose: Callable[[str], bool] | None = None
    lost: list[str] = field(default_factory=list)
    delivered: list[bytes] = field(default_factory=list)

    def __post_init__(self) -> None:
        relay = self
        self._lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                status = relay.relay(self.path, body, self.headers.get("Authorization"))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def relay(self, path: str, body: bytes, authorization: str | None) -> int:
        key = str(json.loads(body or b"{}").get("key", ""))
        if self.lose is not None and self.lose(key):
            with self._lock:
                self.lost.append(key)
            return 200
        status = 502
        for _ in range(2 if self.twice else 1):
            status = self.forward(path, body, authorization)
        with self._lock:
            self.delivered.append(body)
        return status

    def forward(self, path: str, body: bytes, authorization: str | None) -> int:
        headers = {"Content-Type": "application/json"}
        if authorization:
            headers["Authorization"] = authorization
        request = urllib.request.Request(self.target + path, data=body, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return int(response.status)
        except urllib.error.HTTPError as err:
            return int(err.code)
        except OSError:
            return 502

    def posts_for(self, key: str) -> list[bytes]:
        with self._lock:
            return [b for b in self.delivered if json.loads(b).get("key") == key]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@dataclass
class Stack:
    seaweedfs: SeaweedFS
    relay: Relay
    watcher: WatcherProcess
    token: str


def _gateway(api: client.ApiClient) -> str:
    """A node's bridge gateway: a host address that pods in their own network reach."""
    for node in client.CoreV1Api(api).list_node().items:
        if node.spec.pod_cidr and not node.spec.taints:
            return str(ipaddress.IPv4Network(node.spec.pod_cidr).network_address + 1)
    raise AssertionError("no untainted node with a pod range: pod networking is off")


@pytest.fixture(scope="module")
def stack(
    cluster_access: ClusterAccess,
    api: client.ApiClient,
    kubeconfig: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Stack]:
    workdir = tmp_path_factory.mktemp("operator-watcher")
    identity = watcher_kubeconfig(api, kubeconfig, workdir / "watcher.kubeconfig")
    token = secrets.token_urlsafe(24)
    (workdir / "token").write_text(token + "\n")
    port = free_port()
    relay = Relay(f"http://127.0.0.1:{port}")
    seaweedfs = SeaweedFS(
        webhook_url=f"{relay.url}/events/seaweedfs",
        webhook_options={
            "bearer_token": token,
            "event_types": ["create", "update"],
            "timeout_seconds": 10,
        },
        buckets=[BUCKET],
        host=_gateway(api),
    )
    config: dict[str, Any] = {
        "roots": [f"s3://{BUCKET}/ws"],
        "webhook": {"minio": False, "tokenFile": str(workdir / "token")},
        "http": {"host": "127.0.0.1", "port": port},
        "kubernetes": {"kubeconfig": str(identity)},
    }
    watcher = WatcherProcess(workdir, config, {})
    try:
        seaweedfs.start()
        watcher.start()
        yield Stack(seaweedfs, relay, watcher, token)
    finally:
        watcher.stop()
        seaweedfs.stop()
        relay.close()


def _start_operator(harness: Harness, stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    """The operator on the S3 workspace: it reads plans and checks outputs with the keys from
    its environment (named in its storage config); the Jobs get them as plain env."""
    s3 = stack.seaweedfs
    for name, value in s3.env.items():
        monkeypatch.setenv(name, value)
    env = [{"name": FAULTS_ENV, "value": str(harness.faults)}]
    env += [{"name": k, "value": v} for k, v in sorted(s3.env.items())]
    template = {
        "command": [sys.executable, str(FAULT_INFER)],
        "gpus": 0,
        "tolerations": [],
        "env": env,
        "ttlSecondsAfterFinished": 600,
    }
    harness.start_operator(
        "--standalone",
        workspace=f"s3://{BUCKET}/ws",
        storage={
            "endpoint_url": s3.s3_endpoint,
            "region": s3.region,
            "path_style": True,
            "access_key_id_env": "AWS_ACCESS_KEY_ID",
            "secret_access_key_env": "AWS_SECRET_ACCESS_KEY",
        },
        inference=template,
        media=template,
    )


def _upload_source(stack: Stack, harness: Harness, source: Path) -> str:
    key = f"in/{harness.namespace}/{source.name}"
    stack.seaweedfs.s3_client().upload_file(str(source), BUCKET, key)
    return f"s3://{BUCKET}/{key}"


def _filer_key(uri: str) -> str:
    scheme, bucket, key = split_uri(uri)
    assert (scheme, bucket) == ("s3", BUCKET), uri
    return f"/buckets/{bucket}/{key}"


def _head(stack: Stack, uri: str) -> dict[str, Any]:
    _, bucket, key = split_uri(uri)
    head: dict[str, Any] = stack.seaweedfs.s3_client().head_object(Bucket=bucket, Key=key)
    return head


def _watcher_patches(access: ClusterAccess, namespace: str) -> collections.Counter[str]:
    """The watcher's status patches per Segment, from the API server's audit log."""
    patches: collections.Counter[str] = collections.Counter()
    seen: set[str] = set()
    for line in access.audit_log.read_text(errors="replace").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        ref = entry.get("objectRef") or {}
        if (
            entry.get("user", {}).get("username") == WATCHER_USER
            and ref.get("namespace") == namespace
            and entry.get("verb") == "patch"
            and entry.get("auditID") not in seen
            and int((entry.get("responseStatus") or {}).get("code") or 0) == 200
        ):
            seen.add(entry["auditID"])
            patches[ref.get("name", "")] += 1
    return patches


def test_completions_come_from_storage_events_even_when_delivered_twice(
    harness: Harness, stack: Stack, media: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    stack.relay.twice, stack.relay.lose = True, None
    duplicates_before = stack.watcher.counter("stereo_watcher_events_duplicate_total")
    _start_operator(harness, stack, monkeypatch)
    source = _upload_source(stack, harness, media["6s"])
    harness.create_videojob(
        "film", source, parallelism=3, timeouts={"completionGraceSeconds": LONG_GRACE_SECONDS}
    )
    vj = harness.wait_phase("film", "Succeeded", "Failed", timeout=300)
    status = vj["status"]
    assert status["phase"] == "Succeeded", status
    total = status["segmentsTotal"]
    assert total == 6

    # Every completion is the watcher's, from the filer's event, and names the object as
    # it is in the bucket.
    segments = harness.segments("film")
    assert [s["status"]["phase"] for s in segments] == ["Completed"] * total
    for seg in segments:
        completion = seg["status"]["completion"]
        assert completion["source"] == WEBHOOK_SOURCE, completion
        assert completion["uri"] == seg["spec"]["outputUri"]
        assert completion["size"] == _head(stack, completion["uri"])["ContentLength"]
        assert seg["status"]["attempts"] == 1

    # Each event arrived twice; each completion was written once.
    stack.watcher.wait_counter(
        "stereo_watcher_events_duplicate_total", duplicates_before + total, timeout=30
    )
    patches = _watcher_patches(harness.access, harness.namespace)
    assert patches == {s["metadata"]["name"]: 1 for s in segments}, patches
    operator_patches = [
        r
        for r in operator_requests(harness.access.audit_log, harness.namespace)
        if r["verb"] == "patch" and r["objectRef"]["resource"] == "segments"
    ]
    assert len(operator_patches) == 2 * total  # started, completed: no second completion

    # Replaying an event after the fact changes nothing either.
    first = segments[0]
    replay = stack.relay.posts_for(_filer_key(first["spec"]["outputUri"]))[0]
    answer, _ = stack.watcher.post("/events/seaweedfs", replay, stack.token)
    assert answer == 200
    again = harness.segments("film")[0]["status"]
    assert again["completion"] == first["status"]["completion"]
    assert harness.phase("film") == "Succeeded"

    # The result is the whole film, in the bucket.
    output = harness.tmp / "output.mp4"
    _, bucket, key = split_uri(status["outputUri"])
    stack.seaweedfs.s3_client().download_file(bucket, key, str(output))
    assert frame_count(output) == frame_count(media["6s"])
    assert abs(audio_duration(output) - audio_duration(media["6s"])) <= 1 / 24 + 1e-6


def test_a_lost_event_is_made_good_by_the_operators_own_check(
    harness: Harness, stack: Stack, media: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    lost_index = 2
    suffix = f"/segments/{lost_index:05d}/output.mp4"
    stack.relay.twice = False
    stack.relay.lose = lambda key: f"/{harness.namespace}/" in key and key.endswith(suffix)
    stack.relay.lost.clear()
    _start_operator(harness, stack, monkeypatch)
    source = _upload_source(stack, harness, media["4s"])
    harness.create_videojob(
        "film", source, parallelism=4, timeouts={"completionGraceSeconds": LONG_GRACE_SECONDS}
    )

    # Every other segment completes from its event; the one whose event was lost stays
    # Running although its Job succeeded: within the grace period nothing else completes it.
    def stuck() -> list[dict[str, Any]] | None:
        segments = harness.segments("film")
        if len(segments) != 4:
            return None
        others = [s for s in segments if s["spec"]["index"] != lost_index]
        done = all((s.get("status") or {}).get("phase") == "Completed" for s in others)
        job = [j for j in harness.jobs("inference") if j.metadata.labels.get(
            "stereo.dev/segment-index") == str(lost_index)]  # fmt: skip
        succeeded = bool(job) and bool(job[0].status.succeeded)
        return segments if done and succeeded else None

    harness.wait(stuck, 240, f"all segments but {lost_index} completed, its Job succeeded")
    assert stack.relay.lost, "the relay lost no event"
    assert harness.phase("film") == "Running"
    lost = harness.segments("film")[lost_index]["status"]
    assert lost["phase"] == "Running" and "completion" not in lost, lost

    # With the grace period over, the operator checks the object itself.
    harness.patch_spec("film", timeouts={"completionGraceSeconds": 0})
    vj = harness.wait_phase("film", "Succeeded", "Failed", timeout=180)
    assert vj["status"]["phase"] == "Succeeded", vj["status"]
    sources = [s["status"]["completion"]["source"] for s in harness.segments("film")]
    expected = [WEBHOOK_SOURCE] * 4
    expected[lost_index] = "reconcile"
    assert sources == expected
    assert set(stack.relay.lost) == {
        _filer_key(harness.segments("film")[lost_index]["spec"]["outputUri"])
    }
