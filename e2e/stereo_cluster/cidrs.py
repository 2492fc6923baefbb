"""Pick a pod CIDR and a service CIDR per cluster, so clusters on one machine never collide.

A cluster takes one index k: pods get 10.(64+k).0.0/16, node i the /24 10.(64+k).i.0/24, and
Services 10.(128+k).0.0/16. An index is free when no route or address of the machine overlaps
either range and no other live cluster has claimed it. The claim is a file (created with
O_EXCL) because a starting cluster puts nothing on the machine until its nodes run.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import random
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

POD_SECOND_OCTETS = range(64, 128)
SERVICE_OCTET_OFFSET = 64
# A claim younger than this belongs to a cluster still starting (no state file yet).
_CLAIM_GRACE_SECONDS = 120.0

Network = ipaddress.IPv4Network


class CidrError(RuntimeError):
    """No free range is left on this machine."""


@dataclass(frozen=True)
class ClusterCidrs:
    pods: str
    services: str

    def node(self, index: int) -> str:
        """Node `index` (1-based) gets the /24 x.y.index.0/24 of the pod range."""
        net = ipaddress.IPv4Network(self.pods)
        if not 1 <= index <= 254:
            raise ValueError(f"node index {index} is outside 1..254")
        return str(ipaddress.IPv4Network((int(net.network_address) + (index << 8), 24)))

    @property
    def kubernetes_service_ip(self) -> str:
        """The first service IP: the API server gives it to the `kubernetes` Service."""
        return first_ip(self.services)


def first_ip(cidr: str) -> str:
    return str(ipaddress.IPv4Network(cidr).network_address + 1)


def _claims_dir() -> Path:
    run = Path("/run")
    base = run if os.access(run, os.W_OK) else Path(tempfile.gettempdir())
    path = base / f"stereo-cluster-cidrs-{os.getuid()}"
    path.mkdir(exist_ok=True)
    return path


def used_networks() -> list[Network]:
    """Every IPv4 route (all tables) and address on the machine, default routes excepted."""
    if shutil.which("ip") is None:
        return []
    found: list[Network] = []
    routes = subprocess.run(
        ["ip", "-j", "-4", "route", "show", "table", "all"], capture_output=True, text=True
    )
    for route in json.loads(routes.stdout or "[]"):
        dst = route.get("dst", "default")
        if dst != "default":
            with contextlib.suppress(ValueError):
                found.append(ipaddress.IPv4Network(dst, strict=False))
    addrs = subprocess.run(["ip", "-j", "-4", "addr"], capture_output=True, text=True)
    for link in json.loads(addrs.stdout or "[]"):
        for info in link.get("addr_info", []):
            net = f"{info['local']}/{info.get('prefixlen', 32)}"
            found.append(ipaddress.IPv4Network(net, strict=False))
    return found


def _claim_is_stale(path: Path) -> bool:
    try:
        owner = Path(path.read_text().strip())
        age = time.time() - path.stat().st_mtime
    except OSError:
        return True
    if age < _CLAIM_GRACE_SECONDS:
        return False
    state = owner / "cluster.json"
    try:
        return json.loads(state.read_text()).get("pod_cidr") != _pods(int(path.name))
    except (OSError, ValueError):
        return True


def _pods(octet: int) -> str:
    return f"10.{octet}.0.0/16"


def _services(octet: int) -> str:
    return f"10.{octet + SERVICE_OCTET_OFFSET}.0.0/16"


def _try_claim(octet: int, owner: Path) -> bool:
    path = _claims_dir() / str(octet)
    if path.exists() and _claim_is_stale(path):
        path.unlink(missing_ok=True)
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as out:
        out.write(str(owner))
    return True


def claim(owner: Path) -> ClusterCidrs:
    """Claim a free pair of ranges for the cluster whose state lives in `owner`."""
    used = used_networks()

    def free(cidr: str) -> bool:
        net = ipaddress.IPv4Network(cidr)
        return not any(net.overlaps(u) for u in used)

    # Random order: two clusters starting at once rarely even try the same index.
    candidates = [o for o in POD_SECOND_OCTETS if free(_pods(o)) and free(_services(o))]
    random.shuffle(candidates)
    for octet in candidates:
        if _try_claim(octet, owner):
            return ClusterCidrs(pods=_pods(octet), services=_services(octet))
    raise CidrError(
        "no free pod/service CIDR pair in 10.64-127.0.0/16 and 10.128-191.0.0/16: every one "
        "overlaps a route or address of this machine or belongs to another local cluster"
    )


def release(cidrs: ClusterCidrs, owner: Path) -> None:
    octet = ipaddress.IPv4Network(cidrs.pods).network_address.packed[1]
    path = _claims_dir() / str(octet)
    with contextlib.suppress(OSError):
        if Path(path.read_text().strip()) == owner:
            path.unlink()
