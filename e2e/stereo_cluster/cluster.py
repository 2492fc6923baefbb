"""The whole local cluster: the control plane plus node agents, ready for pods.

Node i (1-based) gets the /24 x.y.i.0/24 of the cluster's pod range for its pods' network
namespaces; the first node also runs the Service proxy.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from kubernetes import client, config

from stereo_cluster.controlplane import (
    ClusterState,
    ControlPlaneError,
    LocalControlPlane,
    wait_until,
)
from stereo_cluster.nodeagent import network


@dataclass(frozen=True)
class NodeSpec:
    name: str = "node-1"
    cpu: str = "16"
    memory: str = "64Gi"
    gpus: int = 4
    labels: dict[str, str] = field(default_factory=lambda: {"nvidia.com/gpu.present": "true"})
    taints: tuple[str, ...] = ()


class LocalCluster:
    def __init__(self, state_dir: Path, nodes: tuple[NodeSpec, ...] = (NodeSpec(),)) -> None:
        self.control_plane = LocalControlPlane(state_dir)
        self.nodes = nodes

    @property
    def kubeconfig(self) -> Path:
        return self.control_plane.state_dir / "admin.kubeconfig"

    def up(self, timeout: float = 180.0) -> ClusterState:
        started = time.monotonic()
        if self.control_plane.state is not None and self.control_plane.is_healthy():
            return self.control_plane.state
        state = self.control_plane.start(timeout)
        try:
            if state.pod_cidr and network.unavailable_reason() is None:
                network.guard_cluster_ranges(state.pod_cidr, state.service_cidr)
            for index, node in enumerate(self.nodes, start=1):
                self._start_node(node, state, index)
            remaining = max(10.0, timeout - (time.monotonic() - started))
            self._wait_nodes_ready(remaining)
        except BaseException:
            self.control_plane.stop()
            raise
        return state

    def down(self) -> None:
        self.control_plane.stop()

    def _start_node(self, node: NodeSpec, state: ClusterState, index: int) -> None:
        argv = [
            sys.executable,
            "-m",
            "stereo_cluster.nodeagent",
            f"--name={node.name}",
            f"--kubeconfig={self.control_plane.node_kubeconfig(node.name)}",
            f"--work-dir={self.control_plane.state_dir / 'nodes' / node.name}",
            f"--api-server-port={state.api_port}",
            f"--cpu={node.cpu}",
            f"--memory={node.memory}",
            f"--gpus={node.gpus}",
            *self.control_plane.node_serving_args(node.name),
        ]
        argv += [f"--label={k}={v}" for k, v in node.labels.items()]
        argv += [f"--taint={t}" for t in node.taints]
        if state.cidrs is not None:
            argv += [
                f"--pod-cidr={state.cidrs.node(index)}",
                f"--cluster-cidr={state.pod_cidr}",
                f"--service-cidr={state.service_cidr}",
            ]
            if index == 1:
                proxy = self.control_plane.proxy_kubeconfig()
                argv += ["--service-proxy", f"--proxy-kubeconfig={proxy}"]
        self.control_plane.add_process(f"node-{node.name}", argv)

    def _wait_nodes_ready(self, timeout: float) -> None:
        core = client.CoreV1Api(config.new_client_from_config(config_file=str(self.kubeconfig)))
        names = {n.name for n in self.nodes}

        def ready() -> bool:
            nodes = {n.metadata.name: n for n in core.list_node().items}
            return names <= nodes.keys() and all(_schedulable(nodes[n]) for n in names)

        try:
            wait_until(ready, timeout, "node agents to register Ready nodes", interval=0.5)
        except ControlPlaneError as exc:
            logs = self.control_plane.log_dir
            raise ControlPlaneError(f"{exc} (logs: {logs}/node-*.log)") from None


def _schedulable(node: client.V1Node) -> bool:
    ready = any(c.type == "Ready" and c.status == "True" for c in node.status.conditions or [])
    # The node-lifecycle controller removes its not-ready taint shortly after Ready.
    tainted = any(t.key.startswith("node.kubernetes.io/") for t in node.spec.taints or [])
    return ready and not tainted
