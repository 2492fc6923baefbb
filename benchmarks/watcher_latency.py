"""Event-to-status latency of the storage-event watcher, per event source.

For each source, N objects are written one after another through the real storage server;
the latency of one event is the time from the write call returning (the object stored) to
the Segment's status.completion showing up on a watch of Segments on the real API server.
The watcher runs as a subprocess with its own ServiceAccount token (rbac.yaml), exactly as
in the integration tests.

    .venv/bin/python benchmarks/watcher_latency.py --events 200
    .venv/bin/python benchmarks/watcher_latency.py --events 200 --mode burst

Sources: sqs (moto S3 -> SQS, long poll), pubsub (fake-gcs-server -> Pub/Sub emulator),
seaweedfs-webhook (weed filer webhook straight to the watcher, spool on),
minio-webhook (no MinIO here: the object goes to moto's S3 and the benchmark posts the
MinIO-format event right after the write returns, as MinIO would).

Modes: sequential (default: the next write waits for the previous completion, so no
queueing) or burst (all N written back to back; latency includes queueing).
Prints one JSON object: per source count, median, p90, p99, min and max in milliseconds.
Set STEREO_TEST_KUBECONFIG to use a running cluster instead of starting one.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import secrets
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from kubernetes import client, config, watch  # noqa: E402

from stereo_types.names import GROUP, SEGMENT_PLURAL, VERSION  # noqa: E402
from tests.servers import (  # noqa: E402
    FakeGcsServer,
    ManagedServer,
    MotoServer,
    PubSubEmulator,
    SeaweedFS,
    free_port,
)
from tests.watcher import payloads  # noqa: E402
from tests.watcher.harness import (  # noqa: E402
    WatcherProcess,
    create_segment,
    create_videojob,
    output_uri,
    watcher_kubeconfig,
)

SOURCES = ("sqs", "pubsub", "seaweedfs-webhook", "minio-webhook")
BUCKETS = {
    "sqs": "bench-sqs",
    "pubsub": "bench-gcs",
    "seaweedfs-webhook": "bench-sw",
    "minio-webhook": "bench-minio",
}
SCHEMES = {"pubsub": "gs"}
PROJECT = "bench"


def _root(source: str) -> str:
    return f"{SCHEMES.get(source, 's3')}://{BUCKETS[source]}/ws"


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def _summary(latencies: list[float]) -> dict[str, Any]:
    ms = [v * 1000 for v in latencies]
    return {
        "count": len(ms),
        "median_ms": round(_percentile(ms, 0.5), 2),
        "p90_ms": round(_percentile(ms, 0.9), 2),
        "p99_ms": round(_percentile(ms, 0.99), 2),
        "min_ms": round(min(ms), 2),
        "max_ms": round(max(ms), 2),
    }


class CompletionWatch:
    """A watch on Segments in one namespace: when each first shows a completion."""

    def __init__(self, api: client.ApiClient, namespace: str) -> None:
        self.seen: dict[str, float] = {}
        self._cond = threading.Condition()
        self._api = api
        self._namespace = namespace
        self._watch = watch.Watch()
        co = client.CustomObjectsApi(api)
        listed = co.list_namespaced_custom_object(GROUP, VERSION, namespace, SEGMENT_PLURAL)
        self._rv = listed["metadata"]["resourceVersion"]
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        co = client.CustomObjectsApi(self._api)
        while True:
            try:
                for item in self._watch.stream(
                    co.list_namespaced_custom_object,
                    GROUP,
                    VERSION,
                    self._namespace,
                    SEGMENT_PLURAL,
                    resource_version=self._rv,
                    timeout_seconds=300,
                ):
                    now = time.perf_counter()
                    obj = item["object"]
                    self._rv = obj["metadata"]["resourceVersion"]
                    name = obj["metadata"]["name"]
                    if (obj.get("status") or {}).get("completion") and name not in self.seen:
                        with self._cond:
                            self.seen[name] = now
                            self._cond.notify_all()
            except Exception as exc:  # reconnect (a watch ends after timeout_seconds)
                if "410" in str(exc):
                    return
                time.sleep(0.1)

    def wait(self, names: set[str], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not names <= self.seen.keys():
                left = deadline - time.monotonic()
                if left <= 0:
                    missing = sorted(names - self.seen.keys())
                    raise TimeoutError(f"no completion for {len(missing)}: {missing[:5]}")
                self._cond.wait(left)

    def stop(self) -> None:
        self._watch.stop()


class Writers:
    """One way to store an object per source; returns when the write call returned."""

    def __init__(
        self,
        moto: MotoServer,
        gcs: FakeGcsServer,
        seaweedfs: SeaweedFS,
        watcher: WatcherProcess,
        token: str,
    ) -> None:
        self.s3 = moto.client("s3")
        self.gcs = gcs.client()
        self.sw = seaweedfs.s3_client()
        self.watcher = watcher
        self.token = token

    def write(self, source: str, key: str, data: bytes) -> float:
        """Store the object; returns time.perf_counter() when the write call returned."""
        bucket = BUCKETS[source]
        if source == "sqs":
            self.s3.put_object(Bucket=bucket, Key=key, Body=data)
        elif source == "pubsub":
            self.gcs.bucket(bucket).blob(key).upload_from_string(data)
        elif source == "seaweedfs-webhook":
            self.sw.put_object(Bucket=bucket, Key=key, Body=data)
        else:
            response = self.s3.put_object(Bucket=bucket, Key=key, Body=data)
            written = time.perf_counter()
            body = payloads.minio_body(
                key=key,
                bucket=bucket,
                size=len(data),
                etag=str(response["ETag"]).strip('"'),
                sequencer=f"{time.time_ns():X}",
                time=datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            )
            self._post(json.dumps(body).encode())
            return written
        return time.perf_counter()

    def _post(self, body: bytes) -> None:
        request = urllib.request.Request(
            f"{self.watcher.url}/events/minio",
            data=body,
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            response.read()


@contextlib.contextmanager
def _cluster(workdir: Path) -> Iterator[Path]:
    existing = os.environ.get("STEREO_TEST_KUBECONFIG")
    if existing:
        yield Path(existing)
        return
    from stereo_cluster.cluster import LocalCluster

    cluster = LocalCluster(workdir / "cluster")
    cluster.up()
    try:
        yield cluster.kubeconfig
    finally:
        cluster.down()


def _apply_crds(kubeconfig: Path) -> None:
    import subprocess

    kubectl = str(Path(sys.executable).parent / "kubectl")
    subprocess.run(
        [kubectl, f"--kubeconfig={kubeconfig}", "apply", "--server-side", "-f", str(ROOT / "crds")],
        check=True,
        capture_output=True,
        timeout=60,
    )
    subprocess.run(
        [
            kubectl,
            f"--kubeconfig={kubeconfig}",
            "wait",
            "--for=condition=Established",
            "crd/segments.stereo.dev",
            "crd/videojobs.stereo.dev",
            "--timeout=60s",
        ],
        check=True,
        capture_output=True,
        timeout=90,
    )


def _histogram_means(watcher: WatcherProcess) -> dict[str, float]:
    out = {}
    for source in SOURCES:
        total = watcher.counter("stereo_watcher_event_to_patch_seconds_sum", source=source)
        count = watcher.counter("stereo_watcher_event_to_patch_seconds_count", source=source)
        if count:
            out[source] = round(total / count * 1000, 2)
    return out


def run(events: int, sources: list[str], mode: str, size: int) -> dict[str, Any]:
    started: list[ManagedServer] = []
    with tempfile.TemporaryDirectory(prefix="watcher-bench-") as tmp, _cluster(Path(tmp)) as kc:
        workdir = Path(tmp)
        _apply_crds(kc)
        api = config.new_client_from_config(config_file=str(kc))
        identity = watcher_kubeconfig(api, kc, workdir / "watcher.kubeconfig")
        namespace = f"bench-{secrets.token_hex(3)}"
        client.CoreV1Api(api).create_namespace({"metadata": {"name": namespace}})
        token = secrets.token_urlsafe(24)
        (workdir / "token").write_text(token)
        port = free_port()
        try:
            moto = MotoServer().start()
            started.append(moto)
            emulator = PubSubEmulator().start()
            started.append(emulator)
            gcs = FakeGcsServer(pubsub=emulator, project=PROJECT, topic="events").start()
            started.append(gcs)
            seaweedfs = SeaweedFS(
                webhook_url=f"http://127.0.0.1:{port}/events/seaweedfs",
                webhook_options={"bearer_token": token, "event_types": ["create", "update"]},
            ).start()
            started.append(seaweedfs)
            queue = moto.create_bucket_with_queue(BUCKETS["sqs"], "bench-events")
            moto.client("s3").create_bucket(Bucket=BUCKETS["minio-webhook"])
            gcs.create_bucket(BUCKETS["pubsub"])
            subscription = gcs.create_subscription("bench-watcher")
            seaweedfs.create_bucket(BUCKETS["seaweedfs-webhook"])
            watcher = WatcherProcess(
                workdir,
                {
                    "roots": [_root(s) for s in SOURCES],
                    "sqs": [
                        {
                            "queueUrl": queue.queue_url,
                            "endpointUrl": moto.endpoint_url,
                            "region": moto.region,
                        }
                    ],
                    "pubsub": [{"subscription": subscription}],
                    "webhook": {
                        "tokenFile": str(workdir / "token"),
                        "spoolDir": str(workdir / "spool"),
                    },
                    "http": {"host": "127.0.0.1", "port": port},
                    "kubernetes": {"kubeconfig": str(identity)},
                    "logLevel": "WARNING",
                },
                {
                    "AWS_ACCESS_KEY_ID": moto.access_key,
                    "AWS_SECRET_ACCESS_KEY": moto.secret_key,
                    "AWS_DEFAULT_REGION": moto.region,
                    "PUBSUB_EMULATOR_HOST": emulator.host,
                },
            )
            watcher.start()
            writers = Writers(moto, gcs, seaweedfs, watcher, token)
            plan: dict[str, list[tuple[str, str]]] = {}
            for source in sources:
                videojob = f"bench-{source.split('-')[0]}"
                uid = create_videojob(api, namespace, videojob)
                plan[source] = []
                for index in range(events):
                    uri = output_uri(_root(source), namespace, videojob, uid, index)
                    name = create_segment(api, namespace, videojob, uid, index, uri)
                    plan[source].append((name, uri.split("/", 3)[3]))
            seen = CompletionWatch(api, namespace)
            data = os.urandom(size)
            results: dict[str, Any] = {}
            try:
                for source in sources:
                    # Warm-up object (connections, first volume allocation): not measured.
                    warm_uri = output_uri(_root(source), namespace, "warm", "w", 0)
                    writers.write(source, warm_uri.split("/", 3)[3], data)
                    time.sleep(0.5)
                    written: dict[str, float] = {}
                    for name, key in plan[source]:
                        written[name] = writers.write(source, key, data)
                        if mode == "sequential":
                            seen.wait({name}, 60)
                    seen.wait(set(written), 120)
                    results[source] = _summary([seen.seen[n] - t for n, t in written.items()])
                results_means = _histogram_means(watcher)
            finally:
                seen.stop()
                watcher.stop()
            return {
                "mode": mode,
                "events_per_source": events,
                "object_bytes": size,
                "latency_from_write_to_watch": results,
                "watcher_event_to_patch_mean_ms": results_means,
                "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
            }
        finally:
            for server in reversed(started):
                server.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=200, help="events per source")
    parser.add_argument("--sources", default=",".join(SOURCES))
    parser.add_argument("--mode", choices=("sequential", "burst"), default="sequential")
    parser.add_argument("--size", type=int, default=4096, help="object size in bytes")
    args = parser.parse_args(argv)
    sources = [s for s in args.sources.split(",") if s]
    unknown = set(sources) - set(SOURCES)
    if unknown:
        parser.error(f"unknown sources: {sorted(unknown)}")
    print(json.dumps(run(args.events, sources, args.mode, args.size), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
