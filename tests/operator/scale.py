"""The operator at scale: thousands of segments without thousands of processes.

A `FakeNode` registers a tainted Node (with a Lease kept fresh, as a kubelet does) and plays
the kubelet for the pods the scheduler binds to it: it does what each pod's `stereo-infer`
command would leave behind in the workspace (split: a plan of N one-frame segments;
convert: the segment output; assemble: the final output), then reports the pod Succeeded
with exit code 0. Everything else is real: the operator process, the API server, the Job
controller, the scheduler and the garbage collector. `run_scale` runs one VideoJob of N
segments through it and measures what the operator did, from the API server's audit log.
"""

from __future__ import annotations

import collections
import json
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

from stereo_operator import labels
from stereo_types.layout import VideoJobRef, segment_output_uri
from stereo_types.plan import PlannedSegment, SplitPlan, plan_uri
from tests.operator.factories import window
from tests.operator.harness import Harness, active, file_path, operator_requests

TAINT_KEY = "stereo.dev/fake-kubelet"
HOSTNAME_LABEL = "kubernetes.io/hostname"
LEASE_SECONDS = 40
HEARTBEAT_SECONDS = 10.0
KUBELET_THREADS = 4


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _micro_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _arg(args: list[str], flag: str) -> str:
    return args[args.index(flag) + 1]


def _env(container: Any, name: str) -> str | None:
    return next((e.value for e in container.env or [] if e.name == name), None)


@dataclass
class FakeNode:
    """A schedulable Node whose pods finish as soon as the node sees them."""

    api: client.ApiClient
    name: str
    segments: int
    """How many one-frame segments a split on this node plans."""
    handled: set[str] = field(default_factory=set)
    errors: list[str] = field(default_factory=list)
    """Pods this kubelet could not play (a test failure)."""
    interruptions: int = 0
    """Broken watches and failed lease renewals it recovered from."""

    def __post_init__(self) -> None:
        self.core = client.CoreV1Api(self.api)
        self.coordination = client.CoordinationV1Api(self.api)
        self._stop = threading.Event()
        self._pool = ThreadPoolExecutor(KUBELET_THREADS, thread_name_prefix="fake-kubelet")
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    # -- what pods on this node need ----------------------------------------------------------

    @property
    def selector(self) -> dict[str, str]:
        return {HOSTNAME_LABEL: self.name}

    @property
    def tolerations(self) -> list[dict[str, Any]]:
        return [{"key": TAINT_KEY, "operator": "Exists", "effect": "NoSchedule"}]

    # -- the Node and its Lease ---------------------------------------------------------------

    def start(self) -> FakeNode:
        self.core.create_node(
            {
                "metadata": {"name": self.name, "labels": {HOSTNAME_LABEL: self.name}},
                "spec": {"taints": [{"key": TAINT_KEY, "value": "true", "effect": "NoSchedule"}]},
            }
        )
        self.coordination.create_namespaced_lease(
            "kube-node-lease",
            {
                "metadata": {"name": self.name},
                "spec": {
                    "holderIdentity": self.name,
                    "leaseDurationSeconds": LEASE_SECONDS,
                    "renewTime": _micro_now(),
                },
            },
        )
        self._report_ready()
        for target in (self._heartbeat, self._kubelet):
            thread = threading.Thread(target=target, daemon=True, name=target.__name__)
            thread.start()
            self._threads.append(thread)
        return self

    def _report_ready(self) -> None:
        now = _now()
        amounts = {
            "cpu": "1000",
            "memory": "1000Gi",
            "pods": "20000",
            "ephemeral-storage": "1000Ti",
        }
        self.core.patch_node_status(
            self.name,
            {
                "status": {
                    "capacity": amounts,
                    "allocatable": amounts,
                    "conditions": [
                        {
                            "type": "Ready",
                            "status": "True",
                            "reason": "KubeletReady",
                            "message": "fake kubelet of the scale tests",
                            "lastHeartbeatTime": now,
                            "lastTransitionTime": now,
                        }
                    ],
                }
            },
        )

    def _heartbeat(self) -> None:
        while not self._stop.wait(HEARTBEAT_SECONDS):
            try:
                self.coordination.patch_namespaced_lease(
                    self.name, "kube-node-lease", {"spec": {"renewTime": _micro_now()}}
                )
            except Exception:  # the next renewal comes well within the lease's duration
                self.interruptions += 1

    # -- the pods -----------------------------------------------------------------------------

    def _kubelet(self) -> None:
        resource_version = ""
        while not self._stop.is_set():
            stream = watch.Watch()
            try:
                for event in stream.stream(
                    self.core.list_pod_for_all_namespaces,
                    field_selector=f"spec.nodeName={self.name}",
                    resource_version=resource_version,
                    timeout_seconds=30,
                ):
                    pod = event["object"]
                    resource_version = pod.metadata.resource_version
                    if event["type"] != "DELETED" and pod.status.phase == "Pending":
                        self._claim(pod)
                    if self._stop.is_set():
                        break
            except Exception:  # the API server is busy or the stream broke
                self.interruptions += 1
                resource_version = _restart_watch()
            finally:
                stream.stop()

    def _claim(self, pod: Any) -> None:
        with self._lock:
            if pod.metadata.uid in self.handled:
                return
            self.handled.add(pod.metadata.uid)
        self._pool.submit(self._run, pod)

    def _run(self, pod: Any) -> None:
        try:
            container = pod.spec.containers[0]
            self._play(pod.metadata.labels.get(labels.ROLE), container)
            self._finish(pod, container)
        except Exception as exc:  # a test failure with the reason, not a hung pod
            self.errors.append(f"{pod.metadata.namespace}/{pod.metadata.name}: {exc!r}")

    def _play(self, role: str | None, container: Any) -> None:
        args = list(container.args or [])
        if role == labels.Role.SPLIT.value:
            ref = VideoJobRef(
                _arg(args, "--namespace"), _arg(args, "--videojob"), _arg(args, "--uid")
            )
            plan = self.plan(_arg(args, "--input"), _arg(args, "--workspace"), ref)
            target = file_path(plan_uri(_arg(args, "--workspace"), ref))
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(json.dumps(plan.to_wire()))
        elif role == labels.Role.INFERENCE.value:
            index = _env(container, "STEREO_SEGMENT_INDEX")
            _write(file_path(_arg(args, "--output")), f"segment {index}\n".encode())
        elif role == labels.Role.ASSEMBLE.value:
            _write(file_path(_arg(args, "--output")), b"assembled\n")
        else:
            raise ValueError(f"a pod with no stereo.dev/role label: {role!r}")

    def plan(self, source: str, workspace: str, ref: VideoJobRef) -> SplitPlan:
        """What planning an N-second, 1 fps source in 1-second segments writes."""
        n = self.segments
        return SplitPlan(
            source=source,
            fps_num=1,
            fps_den=1,
            frame_count=n,
            width=32,
            height=32,
            duration_seconds=float(n),
            segment_seconds=1.0,
            segment_frames=1,
            segments=[
                PlannedSegment(
                    index=i,
                    input_uri=source,
                    window=window(i, 1),
                    output_uri=segment_output_uri(workspace, ref, i, "mp4"),
                    start_frame=i,
                    frame_count=1,
                    start_seconds=float(i),
                    duration_seconds=1.0,
                )
                for i in range(n)
            ],
        )

    def _finish(self, pod: Any, container: Any) -> None:
        now = _now()
        terminated = {"exitCode": 0, "reason": "Completed", "startedAt": now, "finishedAt": now}
        status = {
            "phase": "Succeeded",
            "startTime": now,
            "containerStatuses": [
                {
                    "name": container.name,
                    "image": container.image,
                    "imageID": "",
                    "ready": False,
                    "started": False,
                    "restartCount": 0,
                    "state": {"terminated": terminated},
                }
            ],
        }
        self.core.patch_namespaced_pod_status(
            pod.metadata.name, pod.metadata.namespace, {"status": status}
        )

    def stop(self) -> None:
        """Stop playing the kubelet and remove the Node (the pod GC removes its pods)."""
        self._stop.set()
        for thread in self._threads:
            thread.join(35)
        self._pool.shutdown(wait=True)
        for call in (
            lambda: self.coordination.delete_namespaced_lease(self.name, "kube-node-lease"),
            lambda: self.core.delete_node(self.name),
        ):
            try:
                call()
            except ApiException as exc:
                if exc.status != 404:
                    raise


def _restart_watch() -> str:
    """After a broken watch (410 Gone, 504 from a lagging cache, a dropped connection): a
    moment's pause, then a watch without a resource version, which lists every current
    object first, so nothing that changed meanwhile is missed."""
    time.sleep(0.5)
    return ""


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_bytes(data)
    partial.replace(path)


# ---------------------------------------------------------------------------------------------
# One VideoJob of N segments, observed


@dataclass
class Observer:
    """Watches the namespace's inference Jobs (peak in flight, from the API's own order of
    events) and samples the VideoJob's status size while the run goes on."""

    harness: Harness
    videojob: str
    peak_inflight: int = 0
    max_status_bytes: int = 0
    max_object_bytes: int = 0

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._jobs, daemon=True),
            threading.Thread(target=self._sizes, daemon=True),
        ]

    def start(self) -> Observer:
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(35)

    def _jobs(self) -> None:
        running: dict[str, bool] = {}
        resource_version = ""
        selector = f"{labels.ROLE}={labels.Role.INFERENCE.value}"
        while not self._stop.is_set():
            stream = watch.Watch()
            try:
                for event in stream.stream(
                    self.harness.batch.list_namespaced_job,
                    self.harness.namespace,
                    label_selector=selector,
                    resource_version=resource_version,
                    timeout_seconds=5,
                ):
                    job = event["object"]
                    resource_version = job.metadata.resource_version
                    if event["type"] == "DELETED" or not active(job):
                        running.pop(job.metadata.name, None)
                    else:
                        running[job.metadata.name] = True
                    self.peak_inflight = max(self.peak_inflight, len(running))
                    if self._stop.is_set():
                        break
            except Exception:  # the API server is busy or the stream broke
                resource_version, running = _restart_watch(), {}
            finally:
                stream.stop()

    def _sizes(self) -> None:
        while not self._stop.wait(1.0):
            self.sample()

    def sample(self) -> None:
        vj = self.harness.videojob(self.videojob)
        if vj is None:
            return
        status_bytes = len(json.dumps(vj.get("status") or {}, separators=(",", ":")))
        object_bytes = len(json.dumps(vj, separators=(",", ":")))
        self.max_status_bytes = max(self.max_status_bytes, status_bytes)
        self.max_object_bytes = max(self.max_object_bytes, object_bytes)


@dataclass(frozen=True)
class ScaleRun:
    segments: int
    wall_seconds: float
    videojob: dict[str, Any]
    requests: list[dict[str, Any]]
    peak_inflight: int
    max_status_bytes: int
    max_object_bytes: int
    metrics: str

    def writes(self) -> collections.Counter[str]:
        counted: collections.Counter[str] = collections.Counter()
        for r in self.requests:
            if r["verb"] in ("create", "update", "patch", "delete"):
                ref = r["objectRef"]
                sub = f"/{ref['subresource']}" if ref.get("subresource") else ""
                counted[f"{r['verb']} {ref['resource']}{sub}"] += 1
        return counted

    def reads(self) -> collections.Counter[str]:
        counted: collections.Counter[str] = collections.Counter()
        for r in self.requests:
            if r["verb"] not in ("create", "update", "patch", "delete"):
                counted[f"{r['verb']} {r['objectRef']['resource']}"] += 1
        return counted

    def segment_create_times(self) -> list[float]:
        return sorted(
            datetime.fromisoformat(r["requestReceivedTimestamp"].replace("Z", "+00:00")).timestamp()
            for r in self.requests
            if r["verb"] == "create" and r["objectRef"]["resource"] == "segments"
        )

    def figures(self) -> dict[str, Any]:
        n = self.segments
        creates = self.segment_create_times()
        return {
            "segments": n,
            "wall_seconds": round(self.wall_seconds, 1),
            "ms_per_segment": round(1000 * self.wall_seconds / n, 1),
            "operator_requests": len(self.requests),
            "operator_requests_per_segment": round(len(self.requests) / n, 3),
            "operator_writes_per_segment": round(sum(self.writes().values()) / n, 3),
            "writes": dict(sorted(self.writes().items())),
            "reads": dict(sorted(self.reads().items())),
            "segment_creation_seconds": round(creates[-1] - creates[0], 1) if creates else None,
            "peak_inflight_jobs": self.peak_inflight,
            "max_status_bytes": self.max_status_bytes,
            "max_videojob_bytes": self.max_object_bytes,
        }


def operator_config(node: FakeNode, max_inflight: int, creates_per_tick: int) -> dict[str, Any]:
    """Config overrides for Harness.start_operator: every pod on the fake node."""
    template = {
        "command": ["stereo-infer"],
        "gpus": 0,
        "nodeSelector": node.selector,
        "tolerations": node.tolerations,
        "ttlSecondsAfterFinished": 3600,
    }
    return {
        "maxInflight": max_inflight,
        "reconcileSeconds": 1,
        "segmentCreatesPerTick": creates_per_tick,
        "inference": template,
        "media": template,
    }


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        return str(response.read().decode())


def run_scale(
    harness: Harness,
    node: FakeNode,
    name: str,
    *,
    parallelism: int,
    metrics_port: int,
    timeout: float,
) -> ScaleRun:
    """Create one VideoJob, follow it to a final phase, and gather what it cost."""
    observer = Observer(harness, name).start()
    started = time.monotonic()
    try:
        harness.create_videojob(
            name,
            (harness.tmp / f"{name}-source.mp4").as_uri(),
            segmentSeconds=1,
            parallelism=parallelism,
        )
        vj = harness.wait_phase(name, "Succeeded", "Failed", timeout=timeout)
        wall = time.monotonic() - started
    finally:
        observer.stop()
    observer.sample()
    # The audit log is written asynchronously (batches); wait until it holds the last patch.
    expected = node.segments if vj["status"]["phase"] == "Succeeded" else 0

    def complete() -> list[dict[str, Any]] | None:
        requests = operator_requests(harness.access.audit_log, harness.namespace)
        statuses = sum(
            1
            for r in requests
            if r["verb"] == "patch" and r["objectRef"].get("subresource") == "status"
            and r["objectRef"]["resource"] == "segments"
        )  # fmt: skip
        return requests if statuses >= 2 * expected else None

    requests = harness.wait(complete, 30, "the audit log to show every Segment status patch")
    return ScaleRun(
        segments=node.segments,
        wall_seconds=wall,
        videojob=vj,
        requests=requests,
        peak_inflight=observer.peak_inflight,
        max_status_bytes=observer.max_status_bytes,
        max_object_bytes=observer.max_object_bytes,
        metrics=scrape(metrics_port),
    )
