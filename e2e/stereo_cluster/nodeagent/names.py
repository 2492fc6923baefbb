"""What a pod knows about names and Services when it starts: its /etc/hosts, its
/etc/resolv.conf and the Service environment variables.

There is no DNS server in the local cluster, so every Service known at pod start goes into
the pod's hosts file under the names cluster DNS would give it. Services created later are
not in it (as with the environment variables, which a kubelet also fixes at start).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from stereo_cluster.nodeagent.services import cluster_ip

CLUSTER_DOMAIN = "cluster.local"
_HOSTS_HEADER = "# Kubernetes-managed hosts file (stereo local node agent).\n"
# For pods in their own network namespace. The host's nameservers are out of a pod's reach
# (pod traffic stays on the machine) and a query to them would only time out after
# seconds; a name server on the pod's own loopback, where none listens, fails at once.
RESOLV_CONF = (
    "# stereo local node agent: no cluster DNS; names come from /etc/hosts.\n"
    "nameserver 127.0.0.1\n"
    "options attempts:1 timeout:1\n"
)


def pod_hostname(pod: Mapping[str, Any]) -> str:
    return str(pod["spec"].get("hostname") or pod["metadata"]["name"])[:63]


def hosts_file(pod: Mapping[str, Any], pod_ip: str, services: Iterable[Mapping[str, Any]]) -> str:
    namespace = pod["metadata"]["namespace"]
    hostname = pod_hostname(pod)
    lines = [
        "127.0.0.1\tlocalhost",
        "::1\tlocalhost ip6-localhost ip6-loopback",
    ]
    own = [hostname]
    if subdomain := pod["spec"].get("subdomain"):
        own.insert(0, f"{hostname}.{subdomain}.{namespace}.svc.{CLUSTER_DOMAIN}")
    if pod_ip != "127.0.0.1":
        lines.append(f"{pod_ip}\t{' '.join(own)}")
    for service in sorted(
        services, key=lambda s: (s["metadata"]["namespace"], s["metadata"]["name"])
    ):
        ip = cluster_ip(service)
        if ip is None:
            continue
        name, ns = service["metadata"]["name"], service["metadata"]["namespace"]
        names = [f"{name}.{ns}.svc.{CLUSTER_DOMAIN}", f"{name}.{ns}.svc", f"{name}.{ns}"]
        if ns == namespace:
            names.append(name)
        lines.append(f"{ip}\t{' '.join(names)}")
    return _HOSTS_HEADER + "\n".join(lines) + "\n"


def _env_name(service: str) -> str:
    return re.sub(r"[^A-Z0-9_]", "_", service.upper())


def service_env(pod: Mapping[str, Any], services: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """The kubelet's Service variables: the `kubernetes` Service always, and with
    `enableServiceLinks` (the default) every Service of the pod's namespace."""
    namespace = pod["metadata"]["namespace"]
    links = pod["spec"].get("enableServiceLinks", True)
    env: dict[str, str] = {}
    for service in services:
        meta = service["metadata"]
        master = (meta["namespace"], meta["name"]) == ("default", "kubernetes")
        if not master and not (links and meta["namespace"] == namespace):
            continue
        ip = cluster_ip(service)
        ports = service["spec"].get("ports") or []
        if ip is None or not ports:
            continue
        prefix = _env_name(meta["name"])
        env[f"{prefix}_SERVICE_HOST"] = ip
        env[f"{prefix}_SERVICE_PORT"] = str(ports[0]["port"])
        first = ports[0]
        env[f"{prefix}_PORT"] = f"{first.get('protocol', 'TCP').lower()}://{ip}:{first['port']}"
        for port in ports:
            proto = port.get("protocol", "TCP")
            if port.get("name"):
                env[f"{prefix}_SERVICE_PORT_{_env_name(port['name'])}"] = str(port["port"])
            base = f"{prefix}_PORT_{port['port']}_{proto}"
            env[base] = f"{proto.lower()}://{ip}:{port['port']}"
            env[f"{base}_PROTO"] = proto.lower()
            env[f"{base}_PORT"] = str(port["port"])
            env[f"{base}_ADDR"] = ip
    return env
