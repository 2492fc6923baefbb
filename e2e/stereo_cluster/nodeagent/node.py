"""Register the Node and keep it Ready: a Lease heartbeat plus the Ready condition.

The node-lifecycle controller taints and evicts nodes whose Lease goes stale, so the
heartbeat is what keeps scheduled pods where they are.
"""

from __future__ import annotations

import logging
import platform
import threading
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from stereo_cluster.binaries import KUBERNETES_VERSION
from stereo_cluster.nodeagent.config import NodeConfig
from stereo_cluster.nodeagent.timefmt import now_rfc3339

log = logging.getLogger(__name__)
LEASE_NAMESPACE = "kube-node-lease"
AGENT_VERSION = "stereo-node-agent://0.1"


def node_manifest(cfg: NodeConfig) -> dict[str, Any]:
    labels = {
        "kubernetes.io/hostname": cfg.name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        **cfg.labels,
    }
    spec: dict[str, Any] = {"taints": [t.manifest() for t in cfg.taints]}
    if cfg.pod_cidr:
        spec.update(podCIDR=cfg.pod_cidr, podCIDRs=[cfg.pod_cidr])
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": cfg.name, "labels": labels},
        "spec": spec,
    }


def _condition(kind: str, status: str, reason: str, message: str, now: str) -> dict[str, str]:
    return {
        "type": kind,
        "status": status,
        "reason": reason,
        "message": message,
        "lastHeartbeatTime": now,
        "lastTransitionTime": now,
    }


def node_status(cfg: NodeConfig, now: str, kubelet_port: int = 0) -> dict[str, Any]:
    """The Node's status; `kubelet_port` is where the agent's kubelet API (logs) listens."""
    conditions = [
        _condition(kind, "False", f"KubeletHas{reason}", message, now)
        for kind, reason, message in (
            ("MemoryPressure", "SufficientMemory", "no memory pressure"),
            ("DiskPressure", "NoDiskPressure", "no disk pressure"),
            ("PIDPressure", "SufficientPID", "no PID pressure"),
        )
    ]
    conditions.append(_condition("Ready", "True", "KubeletReady", "node agent is ready", now))
    status: dict[str, Any] = {
        "capacity": cfg.capacity(),
        "allocatable": cfg.capacity(),
        "conditions": conditions,
        "addresses": [
            {"type": "InternalIP", "address": "127.0.0.1"},
            {"type": "Hostname", "address": cfg.name},
        ],
        "nodeInfo": {
            "machineID": cfg.name,
            "systemUUID": cfg.name,
            "bootID": cfg.name,
            "kernelVersion": platform.release(),
            "osImage": "stereo local node agent",
            "containerRuntimeVersion": AGENT_VERSION,
            "kubeletVersion": f"v{KUBERNETES_VERSION}",
            "kubeProxyVersion": "",
            "operatingSystem": "linux",
            "architecture": "amd64",
        },
    }
    if kubelet_port:
        status["daemonEndpoints"] = {"kubeletEndpoint": {"Port": kubelet_port}}
    return status


class NodeRegistration:
    def __init__(self, api: client.ApiClient, cfg: NodeConfig, kubelet_port: int = 0) -> None:
        self.cfg = cfg
        self.kubelet_port = kubelet_port
        self.core = client.CoreV1Api(api)
        self.coordination = client.CoordinationV1Api(api)

    def register(self) -> None:
        try:
            self.core.create_node(node_manifest(self.cfg))
        except ApiException as exc:
            if exc.status != 409:
                raise
            self._set_pod_cidr()
        self.report_status()
        self.renew_lease()

    def _set_pod_cidr(self) -> None:
        # A node may set its own podCIDR once (the API makes it immutable afterwards).
        if not self.cfg.pod_cidr or self.core.read_node(self.cfg.name).spec.pod_cidr:
            return
        spec = {"podCIDR": self.cfg.pod_cidr, "podCIDRs": [self.cfg.pod_cidr]}
        try:
            self.core.patch_node(self.cfg.name, {"spec": spec})
        except ApiException as exc:
            log.warning("podCIDR of node %s not set: %s", self.cfg.name, exc.reason)

    def report_status(self) -> None:
        status = node_status(self.cfg, now_rfc3339(), self.kubelet_port)
        self.core.patch_node_status(self.cfg.name, {"status": status})

    def renew_lease(self) -> None:
        body = {
            "metadata": {"name": self.cfg.name, "namespace": LEASE_NAMESPACE},
            "spec": {
                "holderIdentity": self.cfg.name,
                "leaseDurationSeconds": self.cfg.lease_seconds,
                "renewTime": now_rfc3339(micro=True),
            },
        }
        try:
            self.coordination.patch_namespaced_lease(self.cfg.name, LEASE_NAMESPACE, body)
        except ApiException as exc:
            if exc.status != 404:
                raise
            self.coordination.create_namespaced_lease(LEASE_NAMESPACE, body)

    def heartbeat_forever(self, stop: threading.Event) -> None:
        beats = 0
        while not stop.wait(self.cfg.heartbeat_seconds):
            beats += 1
            try:
                self.renew_lease()
                if beats % 6 == 0:
                    self.report_status()
            except Exception:  # a missed beat is retried on the next tick
                log.exception("node heartbeat failed")
