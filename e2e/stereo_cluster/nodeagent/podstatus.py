"""Pod status documents built from what the agent knows about its processes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from stereo_cluster.nodeagent.timefmt import now_rfc3339

HOST_IP = "127.0.0.1"  # the node's address (and every pod's, with host networking)


@dataclass
class ContainerRecord:
    """One container's life as the agent saw it."""

    name: str
    image: str
    pid: int | None = None
    started_at: str | None = None
    exit_code: int | None = None
    finished_at: str | None = None
    reason: str | None = None
    message: str | None = None
    waiting_reason: str | None = None
    restart_count: int = 0
    last_exit: dict[str, Any] | None = None
    # What the probes say (true without them): startup passed, readiness passing.
    probe_started: bool = True
    probe_ready: bool = True

    @property
    def running(self) -> bool:
        return self.pid is not None and self.exit_code is None

    @property
    def ready(self) -> bool:
        return self.running and self.probe_started and self.probe_ready

    def state(self) -> dict[str, Any]:
        if self.exit_code is not None:
            terminated: dict[str, Any] = {
                "exitCode": self.exit_code,
                "reason": self.reason or ("Completed" if self.exit_code == 0 else "Error"),
                "startedAt": self.started_at,
                "finishedAt": self.finished_at,
            }
            if self.message:
                terminated["message"] = self.message
            return {"terminated": terminated}
        if self.running:
            return {"running": {"startedAt": self.started_at}}
        waiting: dict[str, Any] = {"reason": self.waiting_reason or "ContainerCreating"}
        if self.message:
            waiting["message"] = self.message
        return {"waiting": waiting}

    def status(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "name": self.name,
            "image": self.image,
            "imageID": "",
            "ready": self.ready,
            "started": self.running and self.probe_started,
            "restartCount": self.restart_count,
            "state": self.state(),
        }
        if self.pid is not None:
            doc["containerID"] = f"stereo-local://{self.pid}"
        if self.last_exit is not None:
            doc["lastState"] = {"terminated": self.last_exit}
        return doc

    def terminate(
        self, exit_code: int, reason: str | None = None, message: str | None = None
    ) -> None:
        self.exit_code = exit_code
        self.finished_at = now_rfc3339()
        self.reason = reason
        self.message = message
        self.started_at = self.started_at or self.finished_at


def _cond(kind: str, ok: bool, now: str, reason: str | None = None) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "type": kind,
        "status": "True" if ok else "False",
        "lastTransitionTime": now,
    }
    if reason:
        doc["reason"] = reason
    return doc


def pod_status(
    pod: dict[str, Any],
    phase: str,
    init: list[ContainerRecord],
    main: list[ContainerRecord],
    start_time: str,
    pod_ip: str = HOST_IP,
    message: str | None = None,
) -> dict[str, Any]:
    """The status document; conditions set by others (PodScheduled, DisruptionTarget) are kept."""
    now = now_rfc3339()
    initialized = all(c.exit_code == 0 for c in init)
    ready = phase == "Running" and all(c.ready for c in main)
    reason = (
        None
        if ready
        else ("PodCompleted" if phase in ("Succeeded", "Failed") else "ContainersNotReady")
    )
    ours = {
        "PodReadyToStartContainers": _cond("PodReadyToStartContainers", phase != "Pending", now),
        "Initialized": _cond(
            "Initialized", initialized, now, None if initialized else "ContainersNotInitialized"
        ),
        "ContainersReady": _cond("ContainersReady", ready, now, reason),
        "Ready": _cond("Ready", ready, now, reason),
    }
    previous = pod.get("status", {}).get("conditions") or []
    kept = [c for c in previous if c["type"] not in ours]
    for c in previous:  # lastTransitionTime only moves when the status does
        if c["type"] in ours and c.get("status") == ours[c["type"]]["status"]:
            ours[c["type"]]["lastTransitionTime"] = c.get("lastTransitionTime", now)
    status: dict[str, Any] = {
        "phase": phase,
        "conditions": kept + list(ours.values()),
        "hostIP": HOST_IP,
        "hostIPs": [{"ip": HOST_IP}],
        "podIP": pod_ip,
        "podIPs": [{"ip": pod_ip}],
        "startTime": start_time,
        "containerStatuses": [c.status() for c in main],
    }
    if init:
        status["initContainerStatuses"] = [c.status() for c in init]
    if message:
        status["message"] = message
    return status
