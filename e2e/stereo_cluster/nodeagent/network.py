"""A network namespace per pod on a per-node bridge, the way a bridge CNI plugin wires pods.

Host side, per node: bridge `<prefix>br` holding the gateway (.1) of the node's /24, with
forwarding enabled on that bridge only (`net.ipv4.conf.<bridge>.forwarding`, not the global
`ip_forward`: the machine does not become a router for its other interfaces, and the setting
leaves with the bridge), and two policy rules that forward what arrives on the bridge only
into the cluster's pod range. Pods reach each other across nodes and the host (Service IPs
are host addresses on lo, so those are local deliveries), never anything beyond the machine.
Where iptables exists, one FORWARD rule accepts that same traffic first: a host firewall
with a DROP policy (Docker's, with br_netfilter) would otherwise drop pod-to-pod packets,
even between pods on one bridge.
Pod side: netns `<prefix>p<last octet>-<pod uid>` with `eth0` (the veth peer of
`<prefix>h<last octet>` on the bridge), the pod IP, lo up and a default route via the gateway.

`<prefix>` is `s<b>n<c>` for the node CIDR 10.b.c.0/24: unique on the machine because each
cluster claims its own /16 (cidrs.py), and short enough for 15-character interface names.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import logging
import os
import shlex
import shutil
import signal
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

HOST_IP = "127.0.0.1"
NETNS_DIR = Path("/run/netns")
# Policy-rule priorities: before the main table (32766), after the local table (0).
_RULE_ALLOW, _RULE_PROHIBIT = 20000, 20001


class NetworkError(RuntimeError):
    """An `ip` command failed while wiring a pod or the node."""


def _ip(*args: str, check: bool = True, batch: str | None = None) -> str:
    result = subprocess.run(["ip", *args], capture_output=True, text=True, input=batch)
    if check and result.returncode != 0:
        what = " ".join(args) + (f" <<{batch.strip()!r}" if batch else "")
        raise NetworkError(f"ip {what}: {result.stderr.strip()}")
    return result.stdout


def _iptables(*args: str) -> bool:
    if shutil.which("iptables") is None:
        return False
    done = subprocess.run(["iptables", "-w", *args], capture_output=True, text=True)
    return done.returncode == 0


def _forward_rule(bridge: str, cluster_cidr: str) -> list[str]:
    comment = ["-m", "comment", "--comment", f"stereo-cluster {bridge}"]
    return ["FORWARD", "-i", bridge, "-d", cluster_cidr, *comment, "-j", "ACCEPT"]


def _remove_forward_rules(iif_prefix: str) -> None:
    if shutil.which("iptables") is None:
        return
    listing = subprocess.run(["iptables", "-w", "-S", "FORWARD"], capture_output=True, text=True)
    for line in listing.stdout.splitlines():
        words = shlex.split(line)
        if words[:1] == ["-A"] and "stereo-cluster" in line and f"-i {iif_prefix}" in line:
            _iptables("-D", *words[1:])


def unavailable_reason() -> str | None:
    """Why pod networks cannot be built here, or None when they can."""
    if os.geteuid() != 0:
        return "the node agent is not root"
    missing = [tool for tool in ("ip", "nsenter") if shutil.which(tool) is None]
    return f"{' and '.join(missing)} not found" if missing else None


def cluster_prefix(pod_cidr: str) -> str:
    """The name prefix shared by every node of the cluster with this pod /16."""
    return f"s{ipaddress.IPv4Network(pod_cidr).network_address.packed[1]}n"


@dataclass(frozen=True)
class PodNet:
    """Where one pod's containers live on the network."""

    ip: str
    netns: str | None = None
    host_veth: str | None = None

    def wrap(self, argv: list[str]) -> list[str]:
        """argv started inside the pod's netns (nsenter execs in place: the pid stays)."""
        if self.netns is None:
            return argv
        return ["nsenter", f"--net={NETNS_DIR / self.netns}", "--", *argv]


HOST_NETWORK = PodNet(ip=HOST_IP)


# --- host state, listed -------------------------------------------------------------------


def _netns_names(prefix: str) -> list[str]:
    names = (line.split()[0] for line in _ip("netns", "list").splitlines() if line.strip())
    return [n for n in names if n.startswith(prefix)]


def _links(prefix: str) -> list[str]:
    return [
        link["ifname"]
        for link in json.loads(_ip("-j", "link", "show") or "[]")
        if link["ifname"].startswith(prefix)
    ]


def _kill_netns_processes(netns: str) -> None:
    # A finished pod's strays (daemonized children) would keep the namespace and its veth.
    for pid in _ip("netns", "pids", netns, check=False).split():
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid), signal.SIGKILL)


def _remove_netns(netns: str, host_veth: str | None) -> None:
    _kill_netns_processes(netns)
    if host_veth:  # deleting one end removes the pair now, not when the netns goes
        _ip("link", "del", host_veth, check=False)
    _ip("netns", "del", netns, check=False)


def _remove_rules(iif_prefix: str) -> None:
    for rule in json.loads(_ip("-j", "rule", "show") or "[]"):
        iif = rule.get("iif", "")
        if iif.startswith(iif_prefix):
            _ip("rule", "del", "pref", str(rule["priority"]), "iif", iif, check=False)


# --- local (lo) addresses, for Service IPs -----------------------------------------------


def add_local_ip(ip: str) -> None:
    _ip("addr", "replace", f"{ip}/32", "dev", "lo")


def remove_local_ip(ip: str) -> None:
    _ip("addr", "del", f"{ip}/32", "dev", "lo", check=False)


def local_ips_in(cidr: str) -> list[str]:
    net = ipaddress.IPv4Network(cidr)
    found = []
    for link in json.loads(_ip("-j", "-4", "addr", "show", "dev", "lo") or "[]"):
        for info in link.get("addr_info", []):
            if ipaddress.IPv4Address(info["local"]) in net:
                found.append(info["local"])
    return found


# --- the whole cluster ---------------------------------------------------------------------


def guard_cluster_ranges(pod_cidr: str, service_cidr: str) -> None:
    """Unreachable routes for the cluster's ranges: host traffic to an address that no node
    or Service holds (yet) fails at once rather than leaving by the default route. The
    routes also mark the ranges as taken for the next cluster on this machine."""
    for cidr in (pod_cidr, service_cidr):
        _ip("route", "replace", "unreachable", cidr)


def remove_cluster_leftovers(pod_cidr: str, service_cidr: str) -> None:
    """Everything the cluster's nodes and service proxy may have left behind."""
    prefix = cluster_prefix(pod_cidr)
    for netns in _netns_names(prefix):
        _remove_netns(netns, None)
    for link in _links(prefix):
        _ip("link", "del", link, check=False)
    _remove_rules(prefix)
    _remove_forward_rules(prefix)
    for ip in local_ips_in(service_cidr):
        remove_local_ip(ip)
    for cidr in (pod_cidr, service_cidr):
        _ip("route", "del", "unreachable", cidr, check=False)


# --- one node ------------------------------------------------------------------------------


class PodNetwork:
    """The node's bridge and its pods' namespaces; pod IPs come from the node's /24."""

    def __init__(self, node_cidr: str, cluster_cidr: str) -> None:
        self.subnet = ipaddress.IPv4Network(node_cidr)
        if self.subnet.prefixlen != 24:
            raise ValueError(f"node pod CIDR {node_cidr} is not a /24")
        octets = self.subnet.network_address.packed
        self.prefix = f"s{octets[1]}n{octets[2]}"
        self.bridge = f"{self.prefix}br"
        self.gateway = str(self.subnet.network_address + 1)
        self.cluster_cidr = cluster_cidr
        self._used: set[int] = set()  # last octets in use; .0, .1 and .255 never handed out
        self._last = 1  # round robin: a just-freed IP is reused last, after ARP caches forgot it
        self._lock = threading.Lock()

    def _netns_prefix(self) -> str:
        return f"{self.prefix}p"

    def _octet_of(self, netns: str) -> int | None:
        head = netns[len(self._netns_prefix()) :].split("-", 1)[0]
        return int(head) if head.isdigit() else None

    def start(self) -> None:
        """Remove this node's stale pods (an earlier agent's: none is adopted), then make
        sure the bridge, its forwarding and its rules are in place."""
        for netns in _netns_names(self._netns_prefix()):
            octet = self._octet_of(netns)
            log.info("removing stale pod network namespace %s", netns)
            _remove_netns(netns, f"{self.prefix}h{octet}" if octet else None)
            if octet is not None and _netns_names(netns):
                self._used.add(octet)  # could not be removed: keep its IP out of use
        for link in _links(f"{self.prefix}h"):
            _ip("link", "del", link, check=False)
        self._bridge_up()
        log.info("pod network: bridge %s, gateway %s, pods from %s", *self._summary())

    def _summary(self) -> tuple[str, str, str]:
        return self.bridge, self.gateway, str(self.subnet)

    def _bridge_up(self) -> None:
        if not _links(self.bridge):
            _ip("link", "add", self.bridge, "type", "bridge")
        # A fixed MAC: a bridge otherwise takes its lowest port's MAC, which changes as pods
        # come and go and leaves the pods' ARP entry for the gateway stale for seconds.
        mac = "02:53:" + ":".join(f"{b:02x}" for b in ipaddress.IPv4Address(self.gateway).packed)
        _ip("link", "set", self.bridge, "address", mac)
        _ip("addr", "replace", f"{self.gateway}/24", "dev", self.bridge)
        _ip("link", "set", self.bridge, "up")
        Path(f"/proc/sys/net/ipv4/conf/{self.bridge}/forwarding").write_text("1\n")
        _remove_rules(self.bridge)
        allow = ("to", self.cluster_cidr, "lookup", "main")
        _ip("rule", "add", "pref", str(_RULE_ALLOW), "iif", self.bridge, *allow)
        _ip("rule", "add", "pref", str(_RULE_PROHIBIT), "iif", self.bridge, "prohibit")
        _remove_forward_rules(self.bridge)
        if shutil.which("iptables") and not _iptables(
            "-I", *_forward_rule(self.bridge, self.cluster_cidr)
        ):
            log.warning(
                "no iptables FORWARD rule for %s: a firewall may drop pod traffic", self.bridge
            )

    def attach(self, uid: str) -> PodNet:
        """A fresh namespace with the next free IP, wired to the bridge."""
        octet = self._allocate()
        net = PodNet(
            ip=str(self.subnet.network_address + octet),
            netns=f"{self._netns_prefix()}{octet}-{uid}",
            host_veth=f"{self.prefix}h{octet}",
        )
        assert net.netns is not None and net.host_veth is not None
        try:
            host = (
                f"netns add {net.netns}\n"
                f"link add {net.host_veth} type veth peer name eth0 netns {net.netns}\n"
                f"link set {net.host_veth} master {self.bridge} up\n"
            )
            _ip("-batch", "-", batch=host)
            inside = (
                "link set lo up\n"
                f"addr add {net.ip}/24 dev eth0\n"
                "link set eth0 up\n"
                f"route add default via {self.gateway}\n"
            )
            _ip("-n", net.netns, "-batch", "-", batch=inside)
        except NetworkError:
            self.detach(net)
            raise
        return net

    def detach(self, net: PodNet) -> None:
        """Remove the pod's namespace and veth and free its IP (processes in it are killed)."""
        if net.netns is None:
            return
        _remove_netns(net.netns, net.host_veth)
        _ip("neigh", "del", net.ip, "dev", self.bridge, check=False)
        octet = self._octet_of(net.netns)
        with self._lock:
            self._used.discard(octet or 0)

    def stop(self) -> None:
        """Remove every pod namespace of this node, the bridge and its rules."""
        for netns in _netns_names(self._netns_prefix()):
            octet = self._octet_of(netns)
            _remove_netns(netns, f"{self.prefix}h{octet}" if octet else None)
        # Not every link starting with the prefix: s64n1 is a prefix of node 10's s64n10br.
        for link in [*_links(f"{self.prefix}h"), *_links(self.bridge)]:
            _ip("link", "del", link, check=False)
        _remove_rules(self.bridge)
        _remove_forward_rules(self.bridge)
        with self._lock:
            self._used.clear()

    def _allocate(self) -> int:
        with self._lock:
            order = [2 + (self._last - 1 + i) % 253 for i in range(253)]
            octet = next((o for o in order if o not in self._used), None)
            if octet is None:
                raise NetworkError(f"no free pod IP left in {self.subnet}")
            self._used.add(octet)
            self._last = octet
            return octet
