"""What a node agent registers and where it runs its pods."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

GPU_RESOURCE = "nvidia.com/gpu"


@dataclass(frozen=True)
class Taint:
    key: str
    effect: str
    value: str | None = None

    @classmethod
    def parse(cls, text: str) -> Taint:
        """`key[=value]:Effect`, as `kubectl taint` writes it."""
        spec, _, effect = text.rpartition(":")
        if not spec or effect not in ("NoSchedule", "PreferNoSchedule", "NoExecute"):
            raise ValueError(
                f"taint {text!r} is not key[=value]:NoSchedule|PreferNoSchedule|NoExecute"
            )
        key, _, value = spec.partition("=")
        return cls(key=key, effect=effect, value=value or None)

    def manifest(self) -> dict[str, str]:
        out = {"key": self.key, "effect": self.effect}
        if self.value is not None:
            out["value"] = self.value
        return out


@dataclass(frozen=True)
class NodeConfig:
    name: str
    kubeconfig: Path
    work_dir: Path
    api_server_port: int
    cpu: str = "8"
    memory: str = "32Gi"
    pods: int = 110
    gpus: int = 0
    labels: dict[str, str] = field(default_factory=dict)
    taints: tuple[Taint, ...] = ()
    lease_seconds: int = 40
    heartbeat_seconds: float = 10.0
    # Pod networking: the node's /24, the cluster's pod /16 (where pods may send traffic)
    # and the Service range; without them every pod uses the host's network.
    pod_cidr: str | None = None
    cluster_cidr: str | None = None
    service_cidr: str | None = None
    # The one node per cluster that proxies Services, with kube-proxy's identity.
    service_proxy: bool = False
    proxy_kubeconfig: Path | None = None
    # The kubelet API (container logs): its serving key pair and the CA its clients' (the
    # API server's) certificates must chain to; without them the node serves no logs.
    serving_cert: Path | None = None
    serving_key: Path | None = None
    client_ca: Path | None = None

    def capacity(self) -> dict[str, str]:
        cap = {
            "cpu": self.cpu,
            "memory": self.memory,
            "pods": str(self.pods),
            "ephemeral-storage": "100Gi",
        }
        if self.gpus:
            cap[GPU_RESOURCE] = str(self.gpus)
        return cap
