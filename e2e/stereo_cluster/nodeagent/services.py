"""A userspace Service proxy, like kube-proxy's old userspace mode.

One node agent per cluster runs it (`--service-proxy`). It watches Services and
EndpointSlices in all namespaces with kube-proxy's own identity (`system:kube-proxy`: the
Node authorizer lets a node read Services but not EndpointSlices), puts every ClusterIP on the
host's lo, and for each TCP port of a Service with a ready endpoint listens on
clusterIP:port and pipes each connection to a randomly chosen ready endpoint. A port without
a ready endpoint has no listener, so connecting is refused, as kube-proxy's REJECT rule does.
`default/kubernetes` has no endpoints here (the API server runs with
`--endpoint-reconciler-type=none`) and goes to the API server on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ipaddress
import json
import logging
import random
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from kubernetes import client, watch

from stereo_cluster.nodeagent.network import add_local_ip, local_ips_in, remove_local_ip

log = logging.getLogger(__name__)
_CONNECT_TIMEOUT = 3.0
_CHUNK = 65536
SERVICE_NAME_LABEL = "kubernetes.io/service-name"

Key = tuple[str, str]  # (namespace, name)


@dataclass(frozen=True)
class Target:
    """One port of one Service: what a listener forwards to."""

    namespace: str
    service: str
    port_name: str


def _key(obj: dict[str, Any]) -> Key:
    return obj["metadata"]["namespace"], obj["metadata"]["name"]


def cluster_ip(service: Mapping[str, Any]) -> str | None:
    """The Service's ClusterIP, or None when it has none (headless, ExternalName)."""
    ip = service.get("spec", {}).get("clusterIP")
    return ip if ip and ip != "None" else None


class ServiceProxy:
    def __init__(self, api: client.ApiClient, api_server_port: int, service_cidr: str) -> None:
        self.core = client.CoreV1Api(api)
        self.discovery = client.DiscoveryV1Api(api)
        self.api_server_port = api_server_port
        # Only addresses of the cluster's own range ever go on lo.
        self.service_cidr = ipaddress.IPv4Network(service_cidr)
        self._lock = threading.Lock()
        self._services: dict[Key, dict[str, Any]] = {}
        self._slices: dict[Key, dict[str, Any]] = {}
        self._synced = {"services": threading.Event(), "slices": threading.Event()}
        self._stopping = threading.Event()
        self._watches: list[watch.Watch] = []
        self._loop = asyncio.new_event_loop()
        self._wake = asyncio.Event()
        self._reconciling = asyncio.Lock()
        # Touched only on the event loop's thread.
        self._servers: dict[tuple[str, int], asyncio.Server] = {}
        self._targets: dict[tuple[str, int], Target] = {}
        self._ips: set[str] = set()

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self, timeout: float = 15.0) -> None:
        """Start proxying; returns once the first lists are served (the API server's
        Service included), so pods started afterwards find it."""
        # Addresses a killed predecessor left on lo go in the first reconcile if no
        # Service holds them any more.
        self._ips = set(local_ips_in(str(self.service_cidr)))
        threading.Thread(target=self._loop.run_forever, name="service-proxy", daemon=True).start()
        asyncio.run_coroutine_threadsafe(self._reconcile_forever(), self._loop)
        watched: list[tuple[str, Callable[..., Any], dict[Key, dict[str, Any]]]] = [
            ("services", self.core.list_service_for_all_namespaces, self._services),
            ("slices", self.discovery.list_endpoint_slice_for_all_namespaces, self._slices),
        ]
        for what, lister, store in watched:
            threading.Thread(
                target=self._watch_forever, args=(what, lister, store), daemon=True
            ).start()
        for event in self._synced.values():
            event.wait(timeout)
        # One reconcile after both lists: the listeners exist when start() returns.
        asyncio.run_coroutine_threadsafe(self._reconcile(), self._loop).result(timeout)

    def stop(self) -> None:
        self._stopping.set()
        for w in self._watches:
            w.stop()
        if self._loop.is_running():
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(5)
            self._loop.call_soon_threadsafe(self._loop.stop)

    async def _shutdown(self) -> None:
        # The reconciler and open connections end with the proxy.
        for task in asyncio.all_tasks():
            if task is not asyncio.current_task():
                task.cancel()
        await asyncio.sleep(0)
        for server in self._servers.values():
            server.close()
        self._servers.clear()
        for ip in self._ips:
            remove_local_ip(ip)
        self._ips.clear()

    # --- watching ------------------------------------------------------------------------------

    def _watch_forever(
        self, what: str, lister: Callable[..., Any], store: dict[Key, dict[str, Any]]
    ) -> None:
        while not self._stopping.is_set():
            try:
                body = json.loads(lister(_preload_content=False).data)
                with self._lock:
                    store.clear()
                    store.update({_key(o): o for o in body["items"]})
                self._synced[what].set()
                self._changed()
                w = watch.Watch()
                self._watches.append(w)
                for event in w.stream(
                    lister,
                    resource_version=body["metadata"]["resourceVersion"],
                    timeout_seconds=300,
                    deserialize=False,
                ):
                    if event["type"] == "ERROR":
                        break
                    obj = event["object"]
                    with self._lock:
                        if event["type"] == "DELETED":
                            store.pop(_key(obj), None)
                        else:
                            store[_key(obj)] = obj
                    self._changed()
                self._watches.remove(w)
            except Exception:  # the API server may be restarting; relist
                if not self._stopping.is_set():
                    log.exception("watching %s failed; relisting", what)
                    self._stopping.wait(1.0)

    def _changed(self) -> None:
        self._loop.call_soon_threadsafe(self._wake.set)

    # --- what should be listening -----------------------------------------------------------

    def endpoints(self, target: Target) -> list[tuple[str, int]]:
        """The ready endpoints of one Service port, as (IP, port)."""
        if (target.namespace, target.service) == ("default", "kubernetes"):
            return [("127.0.0.1", self.api_server_port)]
        found = []
        with self._lock:
            slices = [
                s
                for (ns, _), s in self._slices.items()
                if ns == target.namespace
                and s["metadata"].get("labels", {}).get(SERVICE_NAME_LABEL) == target.service
                and s.get("addressType") == "IPv4"
            ]
        for piece in slices:
            # The EndpointSlice controller has already resolved named targetPorts per pod.
            port = next(
                (
                    p.get("port")
                    for p in piece.get("ports") or []
                    if (p.get("name") or "") == target.port_name
                    and p.get("protocol", "TCP") == "TCP"
                ),
                None,
            )
            if port is None:
                continue
            for endpoint in piece.get("endpoints") or []:
                # An unset `ready` means unknown, which consumers treat as ready.
                if endpoint.get("conditions", {}).get("ready") is not False:
                    found.append((endpoint["addresses"][0], int(port)))
        return found

    def _desired(self) -> tuple[set[str], dict[tuple[str, int], Target]]:
        with self._lock:
            services = list(self._services.items())
        ips: set[str] = set()
        listeners: dict[tuple[str, int], Target] = {}
        for (namespace, name), service in services:
            ip = cluster_ip(service)
            if ip is None or ipaddress.IPv4Address(ip) not in self.service_cidr:
                continue
            ips.add(ip)
            for port in service["spec"].get("ports") or []:
                if port.get("protocol", "TCP") != "TCP":
                    continue
                target = Target(namespace, name, port.get("name") or "")
                if self.endpoints(target):
                    listeners[(ip, int(port["port"]))] = target
        return ips, listeners

    async def _reconcile_forever(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                await self._reconcile()
            except Exception:
                log.exception("service proxy reconcile failed")

    async def _reconcile(self) -> None:
        async with self._reconciling:
            if not self._stopping.is_set():
                await self._apply()

    async def _apply(self) -> None:
        ips, wanted = self._desired()
        for key in [k for k in self._servers if wanted.get(k) != self._targets.get(k)]:
            # Established connections go on; only new ones are refused.
            self._servers.pop(key).close()
        for ip in self._ips - ips:
            remove_local_ip(ip)
        for ip in ips - self._ips:
            add_local_ip(ip)
        self._ips = ips
        self._targets = wanted
        for key, target in wanted.items():
            if key in self._servers:
                continue
            host, port = key
            try:
                self._servers[key] = await asyncio.start_server(
                    functools.partial(self._forward, key), host, port
                )
            except OSError as exc:  # e.g. a host process listens on 0.0.0.0 at that port
                log.error("cannot listen for %s on %s:%d: %s", target, host, port, exc)

    # --- one connection ------------------------------------------------------------------------

    async def _forward(
        self, key: tuple[str, int], reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        target = self._targets.get(key)
        candidates = self.endpoints(target) if target else []
        random.shuffle(candidates)
        for host, port in candidates:
            try:
                up_reader, up_writer = await asyncio.wait_for(
                    asyncio.open_connection(host, port), _CONNECT_TIMEOUT
                )
            except (OSError, TimeoutError) as exc:
                log.info("endpoint %s:%d of %s unreachable: %s", host, port, target, exc)
                continue
            await asyncio.gather(
                _pipe(reader, up_writer, writer), _pipe(up_reader, writer, up_writer)
            )
            for w in (writer, up_writer):
                w.close()
            return
        writer.transport.abort()  # no ready endpoint: closed at once


async def _pipe(
    source: asyncio.StreamReader, sink: asyncio.StreamWriter, source_writer: asyncio.StreamWriter
) -> None:
    """Copy one direction; pass on a half-close, and end both sides on a reset."""
    try:
        while data := await source.read(_CHUNK):
            sink.write(data)
            await sink.drain()
        if sink.can_write_eof():
            sink.write_eof()
    except (ConnectionError, OSError):
        sink.transport.abort()
        source_writer.transport.abort()
