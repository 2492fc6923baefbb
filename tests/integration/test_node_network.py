"""Pod networking on the node agent: a network namespace per pod, Services through the
userspace proxy, Service names in /etc/hosts, and probes, on the real local cluster."""

from __future__ import annotations

import json
import socket
import subprocess
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config

from stereo_cluster.cluster import LocalCluster, NodeSpec
from stereo_cluster.controlplane import ClusterState
from stereo_cluster.nodeagent import network
from tests.integration.kube import eventually


def test_pod_networking_is_available_here() -> None:
    """The test command runs as root with iproute2, so pod networking must be on."""
    assert network.unavailable_reason() is None


# Straight to the address: an http_proxy in the environment must not see cluster traffic.
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _get(url: str, timeout: float = 3.0) -> str:
    with _DIRECT.open(url, timeout=timeout) as response:
        return str(response.read().decode())


def _try_get(url: str) -> str | None:
    """The body, or None while nothing answers yet (for `eventually`)."""
    try:
        return _get(url)
    except OSError:
        return None


def _pod(name: str, command: list[str], labels: dict[str, str] | None = None, **extra: Any) -> dict:
    container: dict[str, Any] = {"name": "main", "image": "local", "command": command}
    container.update(extra.pop("container", {}))
    spec = {"containers": [container], "terminationGracePeriodSeconds": 1, **extra}
    return {"metadata": {"name": name, "labels": labels or {}}, "spec": spec}


def _server(name: str, labels: dict[str, str], **container: Any) -> dict:
    """`python -m http.server 8080` serving /srv, where the pod writes its own name."""
    script = "echo $POD_NAME > /srv/name && exec python -m http.server 8080 --directory /srv"
    container.setdefault("volumeMounts", [{"name": "srv", "mountPath": "/srv"}])
    container["env"] = [
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}
    ]
    container["ports"] = [{"name": "http", "containerPort": 8080}]
    volumes = container.pop("volumes", [{"name": "srv", "emptyDir": {}}])
    return _pod(name, ["sh", "-c", script], labels, container=container, volumes=volumes)


def _service(name: str, selector: dict[str, str]) -> dict:
    port = {"name": "web", "port": 80, "targetPort": "http"}
    return {"metadata": {"name": name}, "spec": {"selector": selector, "ports": [port]}}


def _running_pod(core: client.CoreV1Api, ns: str, name: str) -> client.V1Pod | None:
    pod = core.read_namespaced_pod(name, ns)
    return pod if pod.status.phase == "Running" and pod.status.pod_ip else None


def _finished(core: client.CoreV1Api, ns: str, name: str) -> str | None:
    phase = core.read_namespaced_pod(name, ns).status.phase
    return phase if phase in ("Succeeded", "Failed") else None


def _ready_endpoints(api: client.ApiClient, ns: str, service: str) -> list[str]:
    slices = client.DiscoveryV1Api(api).list_namespaced_endpoint_slice(
        ns, label_selector=f"kubernetes.io/service-name={service}"
    )
    return sorted(
        e.addresses[0]
        for s in slices.items
        for e in s.endpoints or []
        if e.conditions.ready is not False
    )


def _on_lo(ip: str) -> bool:
    out = subprocess.run(["ip", "-4", "-o", "addr", "show", "dev", "lo"], capture_output=True)
    return f" {ip}/32 " in out.stdout.decode()


def _refused(ip: str, port: int) -> bool:
    try:
        socket.create_connection((ip, port), timeout=2).close()
    except ConnectionRefusedError:
        return True
    return False


def _netns_names() -> list[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def _link_names() -> list[str]:
    out = subprocess.run(["ip", "-j", "link", "show"], capture_output=True, text=True).stdout
    return [link["ifname"] for link in json.loads(out)]


@pytest.fixture(scope="module")
def web(api: client.ApiClient) -> Iterator[str]:
    """A namespace with two pods serving port 8080 and a Service `web` in front of them."""
    core = client.CoreV1Api(api)
    ns = f"t-net-{uuid.uuid4().hex[:8]}"
    core.create_namespace({"metadata": {"name": ns}})
    for name in ("web-a", "web-b"):
        core.create_namespaced_pod(ns, _server(name, {"app": "web"}))
    core.create_namespaced_service(ns, _service("web", {"app": "web"}))
    yield ns
    core.delete_namespace(ns)


def test_pods_listen_on_one_port_each_in_its_own_namespace(api: client.ApiClient, web: str) -> None:
    core = client.CoreV1Api(api)
    pods = [eventually(lambda n=n: _running_pod(core, web, n), 60, n) for n in ("web-a", "web-b")]
    ips = [p.status.pod_ip for p in pods]
    assert len(set(ips)) == 2 and "127.0.0.1" not in ips
    node = core.read_node(pods[0].spec.node_name)
    assert node.spec.pod_cidr and all(
        ip.startswith(node.spec.pod_cidr.rsplit(".", 2)[0]) for ip in ips
    )
    for pod, ip in zip(pods, ips, strict=True):
        assert eventually(lambda ip=ip: _try_get(f"http://{ip}:8080/name"), 20, ip).strip() == (
            pod.metadata.name
        )


def test_service_reaches_its_pods_from_host_and_by_name(
    api: client.ApiClient, web: str, tmp_path: Path
) -> None:
    core = client.CoreV1Api(api)
    eventually(lambda: len(_ready_endpoints(api, web, "web")) == 2, 60, "two ready endpoints")
    cluster_ip = core.read_namespaced_service("web", web).spec.cluster_ip
    eventually(lambda: _on_lo(cluster_ip), 30, "the ClusterIP on lo")
    seen = {eventually(lambda: _try_get(f"http://{cluster_ip}/name"), 20, "web").strip()}
    for _ in range(30):
        seen.add(_get(f"http://{cluster_ip}/name").strip())
    assert seen == {"web-a", "web-b"}

    # From a third pod: by name through /etc/hosts, and straight to a pod's IP.
    out = tmp_path / "seen.json"
    pod_ip = core.read_namespaced_pod("web-a", web).status.pod_ip
    _run_client(core, web, out, ["http://web/name", f"http://web.{web}.svc.cluster.local/name"])
    assert json.loads(out.read_text()) == {"names": ["web-a", "web-b"], "host": "client"}
    _run_client(core, web, out, [f"http://{pod_ip}:8080/name"], name="direct")
    assert json.loads(out.read_text())["names"] == ["web-a"]


def _run_client(
    core: client.CoreV1Api, ns: str, out: Path, urls: list[str], name: str = "client", **spec: Any
) -> None:
    """A pod that fetches each URL 15 times and writes the bodies it saw to `out`."""
    script = "\n".join(
        [
            "import json, socket, urllib.request as u",
            "names = set()",
            f"for url in {urls!r} * 15:",
            "    names.add(u.urlopen(url, timeout=5).read().decode().strip())",
            "seen = {'names': sorted(names), 'host': socket.gethostname()}",
            f"json.dump(seen, open('{out}', 'w'))",
        ]
    )
    pod = _pod(name, ["python", "-c", script], restartPolicy="Never", **spec)
    core.create_namespaced_pod(ns, pod)
    assert eventually(lambda: _finished(core, ns, name), 60, f"{name} to finish") == "Succeeded"


def test_readiness_probe_gates_the_endpoint(
    api: client.ApiClient, namespace: str, tmp_path: Path
) -> None:
    """A pod whose readiness probe fails runs but stays out of its Service, whose ClusterIP
    then refuses connections; it joins once the probe passes and leaves when it fails."""
    core = client.CoreV1Api(api)
    probe = {"periodSeconds": 1, "failureThreshold": 1}
    pod = _server(
        "gated",
        {"app": "gated"},
        volumeMounts=[{"name": "srv", "mountPath": "/srv"}],
        volumes=[{"name": "srv", "hostPath": {"path": str(tmp_path)}}],
        startupProbe={"tcpSocket": {"port": "http"}, **probe, "failureThreshold": 30},
        readinessProbe={"httpGet": {"path": "/ready", "port": "http"}, **probe},
    )
    core.create_namespaced_pod(namespace, pod)
    core.create_namespaced_service(namespace, _service("gated", {"app": "gated"}))
    cluster_ip = core.read_namespaced_service("gated", namespace).spec.cluster_ip
    eventually(lambda: _on_lo(cluster_ip), 30, "the ClusterIP on lo")

    def started_not_ready() -> bool:
        status = core.read_namespaced_pod("gated", namespace).status
        containers = status.container_statuses or []
        return bool(containers) and containers[0].started and not containers[0].ready

    eventually(started_not_ready, 60, "the startup probe to pass, readiness failing")
    assert _ready_endpoints(api, namespace, "gated") == []
    assert _refused(cluster_ip, 80)

    (tmp_path / "ready").write_text("ok")
    eventually(lambda: _ready_endpoints(api, namespace, "gated"), 30, "a ready endpoint")
    assert (
        eventually(lambda: _try_get(f"http://{cluster_ip}/ready"), 20, "via the ClusterIP") == "ok"
    )

    (tmp_path / "ready").unlink()
    eventually(lambda: not _ready_endpoints(api, namespace, "gated"), 30, "endpoint withdrawn")
    eventually(lambda: _refused(cluster_ip, 80), 20, "refused again")


def test_liveness_probe_failure_restarts_the_container(
    api: client.ApiClient, namespace: str, tmp_path: Path
) -> None:
    core = client.CoreV1Api(api)
    dead = tmp_path / "dead"
    liveness = {"exec": {"command": ["test", "!", "-e", str(dead)]}, "periodSeconds": 1}
    pod = _pod(
        "lively", ["sleep", "600"], container={"livenessProbe": {**liveness, "failureThreshold": 1}}
    )
    core.create_namespaced_pod(namespace, pod)
    eventually(lambda: _running_pod(core, namespace, "lively"), 60, "the pod to run")
    dead.touch()

    def restarted() -> client.V1ContainerStatus | None:
        status = core.read_namespaced_pod("lively", namespace).status.container_statuses[0]
        return status if status.restart_count >= 1 and status.last_state.terminated else None

    status = eventually(restarted, 30, "a restart after the liveness probe failed")
    assert status.last_state.terminated.exit_code in (137, 143)
    assert "Liveness probe failed" in status.last_state.terminated.message
    dead.unlink()

    def running_again() -> bool:
        status = core.read_namespaced_pod("lively", namespace).status.container_statuses[0]
        return bool(status.state.running and status.ready)

    eventually(running_again, 60, "the restarted container to run")


def test_in_cluster_config_goes_through_the_kubernetes_service(
    api: client.ApiClient, namespace: str, tmp_path: Path
) -> None:
    """In-cluster config reaches the API server at the `kubernetes` Service; and a name
    nobody serves fails at once (there is no DNS server) instead of timing out."""
    core = client.CoreV1Api(api)
    out = tmp_path / "whoami.json"
    script = "\n".join(
        [
            "import json, os, socket, time",
            "from kubernetes import client, config",
            "config.load_incluster_config()",
            "review = client.AuthenticationV1Api().create_self_subject_review({})",
            "env = {k: os.environ[f'KUBERNETES_SERVICE_{k.upper()}'] for k in ('host', 'port')}",
            "began = time.monotonic()",
            "try:",
            "    socket.getaddrinfo('nowhere.example', 80)",
            "except socket.gaierror:",
            "    env['lookup'] = 'failed' if time.monotonic() - began < 1 else 'slow'",
            f"json.dump({{**env, 'user': review.status.user_info.username}}, open('{out}', 'w'))",
        ]
    )
    eventually(lambda: core.list_namespaced_service_account(namespace).items, 30, "default account")
    core.create_namespaced_pod(
        namespace, _pod("incluster", ["python", "-c", script], restartPolicy="Never")
    )
    assert eventually(lambda: _finished(core, namespace, "incluster"), 60, "the pod") == "Succeeded"
    kubernetes_ip = core.read_namespaced_service("kubernetes", "default").spec.cluster_ip
    assert json.loads(out.read_text()) == {
        "host": kubernetes_ip,
        "port": "443",
        "lookup": "failed",
        "user": f"system:serviceaccount:{namespace}:default",
    }


def test_pod_network_is_removed_when_the_pod_ends(api: client.ApiClient, namespace: str) -> None:
    core = client.CoreV1Api(api)
    core.create_namespaced_pod(namespace, _pod("brief", ["true"], restartPolicy="Never"))
    core.create_namespaced_pod(namespace, _pod("long", ["sleep", "600"]))
    pod = eventually(lambda: _running_pod(core, namespace, "long"), 60, "the pod to run")
    netns = next(n for n in _netns_names() if n.endswith(pod.metadata.uid))
    node_prefix, octet = netns.split("-", 1)[0].rsplit("p", 1)  # s<b>n<c>p<octet>-<uid>
    veth = f"{node_prefix}h{octet}"
    assert veth in _link_names()

    brief = core.read_namespaced_pod("brief", namespace)
    eventually(lambda: _finished(core, namespace, "brief"), 60, "the short pod to finish")
    eventually(
        lambda: not any(n.endswith(brief.metadata.uid) for n in _netns_names()),
        20,
        "the finished pod's namespace to go",
    )
    core.delete_namespaced_pod("long", namespace)
    eventually(lambda: netns not in _netns_names(), 30, "the deleted pod's namespace to go")
    assert veth not in _link_names()


def test_second_cluster_gets_its_own_ranges_and_down_removes_everything(
    kubeconfig: Path, tmp_path: Path
) -> None:
    """Two clusters on one machine (the session's and this two-node one) never share an
    address; pods on different nodes reach each other, directly and through a Service; and
    `down` leaves no bridge, veth, netns, policy rule, firewall rule, route or lo address."""
    first = ClusterState.load(kubeconfig.parent)
    nodes = (NodeSpec(name="node-1", gpus=0), NodeSpec(name="node-2", gpus=0))
    cluster = LocalCluster(tmp_path / "second", nodes=nodes)
    state = cluster.up()
    prefix = network.cluster_prefix(state.pod_cidr)
    try:
        if first is not None:
            assert {first.pod_cidr, first.service_cidr}.isdisjoint(
                {state.pod_cidr, state.service_cidr}
            )
        second = config.new_client_from_config(config_file=str(cluster.kubeconfig))
        core = client.CoreV1Api(second)
        eventually(lambda: core.list_namespaced_service_account("default").items, 30, "account")
        server = _server("far", {"app": "far"})
        server["spec"]["nodeSelector"] = {"kubernetes.io/hostname": "node-2"}
        core.create_namespaced_pod("default", server)
        core.create_namespaced_service("default", _service("far", {"app": "far"}))
        far = eventually(lambda: _running_pod(core, "default", "far"), 60, "the server to run")
        assert far.spec.node_name == "node-2"
        out = tmp_path / "seen.json"
        urls = [f"http://{far.status.pod_ip}:8080/name", "http://far/name"]
        eventually(lambda: _ready_endpoints(second, "default", "far"), 30, "an endpoint")
        _run_client(core, "default", out, urls, nodeSelector={"kubernetes.io/hostname": "node-1"})
        assert json.loads(out.read_text())["names"] == ["far"]
        assert any(n.startswith(prefix) for n in _netns_names())
    finally:
        cluster.down()
    assert not [n for n in _netns_names() if n.startswith(prefix)]
    assert not [n for n in _link_names() if n.startswith(prefix)]
    assert network.local_ips_in(state.service_cidr) == []
    rules = subprocess.run(["ip", "rule"], capture_output=True, text=True).stdout
    routes = subprocess.run(["ip", "route"], capture_output=True, text=True).stdout
    firewall = subprocess.run(["iptables", "-w", "-S"], capture_output=True, text=True).stdout
    assert prefix not in rules and f"-i {prefix}" not in firewall
    assert state.pod_cidr not in routes and state.service_cidr not in routes
