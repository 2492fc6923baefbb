"""The node agent's main loop: watch the pods bound to this node and run them."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException

from stereo_cluster.nodeagent.config import NodeConfig
from stereo_cluster.nodeagent.logserver import Authorizer, LogServer, PodLogs
from stereo_cluster.nodeagent.network import PodNetwork, unavailable_reason
from stereo_cluster.nodeagent.node import NodeRegistration
from stereo_cluster.nodeagent.podenv import DataReader, decode_secret
from stereo_cluster.nodeagent.runner import PodRunner
from stereo_cluster.nodeagent.services import ServiceProxy
from stereo_cluster.nodeagent.volumes import VolumeError

log = logging.getLogger(__name__)
_TERMINAL = ("Succeeded", "Failed")


class ClusterPodApi:
    """PodApi over the node's own credentials (the Node authorizer limits what it may do)."""

    def __init__(self, api: client.ApiClient) -> None:
        self.core = client.CoreV1Api(api)

    def patch_status(self, pod: dict[str, Any], status: dict[str, Any]) -> bool:
        meta = pod["metadata"]
        try:
            self.core.patch_namespaced_pod_status(
                meta["name"], meta["namespace"], {"status": status}
            )
        except ApiException as exc:
            if exc.status == 404:
                return False
            log.warning(
                "status of %s/%s not patched: %s", meta["namespace"], meta["name"], exc.reason
            )
        return True

    def delete_now(self, pod: dict[str, Any]) -> None:
        meta = pod["metadata"]
        options = client.V1DeleteOptions(
            grace_period_seconds=0, preconditions=client.V1Preconditions(uid=meta["uid"])
        )
        try:
            self.core.delete_namespaced_pod(meta["name"], meta["namespace"], body=options)
        except ApiException as exc:
            if exc.status not in (404, 409):
                raise

    def request_token(
        self, namespace: str, account: str, audiences: list[str], seconds: int, pod: str, uid: str
    ) -> str:
        """A token bound to the pod, as the kubelet requests for projected volumes."""
        body = {
            "spec": {
                "audiences": audiences or None,
                "expirationSeconds": seconds,
                "boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": pod, "uid": uid},
            }
        }
        try:
            result = self.core.create_namespaced_service_account_token(account, namespace, body)
        except ApiException as exc:
            who = f"{namespace}/{account}"
            raise VolumeError(f"token for service account {who}: {exc.reason}") from None
        return str(result.status.token)

    def list_services(self) -> list[dict[str, Any]]:
        listing = self.core.list_service_for_all_namespaces(_preload_content=False)
        return list(json.loads(listing.data)["items"])

    def read_data(self) -> DataReader:
        def read(kind: str, namespace: str, name: str) -> dict[str, str] | None:
            try:
                if kind == "secret":
                    return decode_secret(self.core.read_namespaced_secret(name, namespace).data)
                return dict(self.core.read_namespaced_config_map(name, namespace).data or {})
            except ApiException as exc:
                if exc.status in (403, 404):
                    return None
                raise

        return read


class NodeAgent:
    def __init__(self, cfg: NodeConfig) -> None:
        self.cfg = cfg
        self.api = config.new_client_from_config(config_file=str(cfg.kubeconfig))
        self.core = client.CoreV1Api(self.api)
        self.pods = ClusterPodApi(self.api)
        self.runners: dict[str, PodRunner] = {}
        self.stopping = threading.Event()
        self._watch: watch.Watch | None = None
        self.network, self.proxy = self._networking()
        # Pods whose logs the kubelet API serves, by (namespace, name), until deleted.
        self.pod_logs: dict[tuple[str, str], PodLogs] = {}
        self.log_server = self._log_server()

    def _log_server(self) -> LogServer | None:
        cfg = self.cfg
        if cfg.serving_cert is None or cfg.serving_key is None or cfg.client_ca is None:
            log.info("no --serving-cert: no kubelet API, so `kubectl logs` will not work")
            return None
        # Its own client: the server's threads must not share the watch's connection pool.
        api = config.new_client_from_config(config_file=str(cfg.kubeconfig))
        return LogServer(
            lambda ns, name: self.pod_logs.get((ns, name)),
            Authorizer(api, cfg.name),
            cfg.serving_cert,
            cfg.serving_key,
            cfg.client_ca,
        )

    def _networking(self) -> tuple[PodNetwork | None, ServiceProxy | None]:
        cfg = self.cfg
        if not cfg.pod_cidr:
            log.info("no --pod-cidr: every pod uses the host's network")
            return None, None
        reason = unavailable_reason()
        if reason is not None:
            log.warning(
                "pod networking and the service proxy are off (%s): every pod "
                "uses the host's network and Services are not reachable",
                reason,
            )
            return None, None
        network = PodNetwork(cfg.pod_cidr, cfg.cluster_cidr or cfg.pod_cidr)
        proxy = None
        if cfg.service_proxy and cfg.proxy_kubeconfig is not None and cfg.service_cidr:
            proxy_api = config.new_client_from_config(config_file=str(cfg.proxy_kubeconfig))
            proxy = ServiceProxy(proxy_api, cfg.api_server_port, cfg.service_cidr)
        return network, proxy

    def base_env(self) -> dict[str, str]:
        # Containers see the API server as in a cluster, and the project's own programs
        # (the interpreter's bin directory) first on PATH. With pod networking the runner
        # replaces the API server's address with the `kubernetes` Service's (names.py).
        bin_dir = str(Path(sys.executable).parent)
        return {
            "PATH": os.pathsep.join([bin_dir, os.environ.get("PATH", "/usr/bin:/bin")]),
            "LANG": os.environ.get("LANG", "C.UTF-8"),
            "KUBERNETES_SERVICE_HOST": "127.0.0.1",
            "KUBERNETES_SERVICE_PORT": str(self.cfg.api_server_port),
        }

    def run(self) -> None:
        try:
            # Networking first: the node is Ready only once pods can be wired and, on the
            # proxy's node, the API server's Service answers.
            if self.network is not None:
                self.network.start()
            if self.proxy is not None:
                self.proxy.start()
            if self.log_server is not None:
                self.log_server.start()
            self._register_and_watch()
        finally:
            self._stop_all()
            if self.log_server is not None:
                self.log_server.stop()
            if self.proxy is not None:
                self.proxy.stop()
            if self.network is not None:
                self.network.stop()

    def _register_and_watch(self) -> None:
        port = self.log_server.port if self.log_server is not None else 0
        registration = NodeRegistration(self.api, self.cfg, port)
        registration.register()
        threading.Thread(
            target=registration.heartbeat_forever, args=(self.stopping,), daemon=True
        ).start()
        log.info("node %s registered with capacity %s", self.cfg.name, self.cfg.capacity())
        while not self.stopping.is_set():
            try:
                self._list_and_watch()
            except Exception:  # the API server may be restarting; relist
                if not self.stopping.is_set():
                    log.exception("pod watch failed; relisting")
                    self.stopping.wait(1.0)

    def _list_and_watch(self) -> None:
        selector = f"spec.nodeName={self.cfg.name}"
        listing = self.core.list_pod_for_all_namespaces(
            field_selector=selector, _preload_content=False
        )
        body = json.loads(listing.data)
        present = {p["metadata"]["uid"] for p in body["items"]}
        for uid in set(self.runners) - present:
            self._forget(uid)
        for key, logs in list(self.pod_logs.items()):
            if logs.directory.name not in present:  # deleted while the watch was down
                del self.pod_logs[key]
        for pod in body["items"]:
            self.handle("ADDED", pod)
        self._watch = watch.Watch()
        for event in self._watch.stream(
            self.core.list_pod_for_all_namespaces,
            field_selector=selector,
            resource_version=body["metadata"]["resourceVersion"],
            timeout_seconds=300,
            deserialize=False,
        ):
            if event["type"] == "ERROR":
                return
            self.handle(event["type"], event["object"])

    def handle(self, kind: str, pod: dict[str, Any]) -> None:
        uid = pod["metadata"]["uid"]
        runner = self.runners.get(uid)
        if kind == "DELETED":
            self._forget(uid)
            key = (pod["metadata"]["namespace"], pod["metadata"]["name"])
            if key in self.pod_logs and self.pod_logs[key].directory.name == uid:
                del self.pod_logs[key]
            return
        if runner is not None and runner.finished.is_set():
            self.runners.pop(uid)
            runner = None
        deleting = pod["metadata"].get("deletionTimestamp") is not None
        phase = pod.get("status", {}).get("phase", "Pending")
        if phase in _TERMINAL:
            return
        if deleting:
            grace = float(pod["metadata"].get("deletionGracePeriodSeconds") or 0)
            if runner is not None:
                runner.request_stop(grace, delete=True)
            else:
                self.pods.delete_now(pod)
            return
        if runner is None:
            if phase == "Running":
                # Started by an earlier agent process whose children died with it.
                self.pods.patch_status(
                    pod,
                    {
                        "phase": "Failed",
                        "reason": "NodeAgentRestarted",
                        "message": "the node agent restarted; the containers were lost",
                    },
                )
                return
            runner = PodRunner(
                self.pods, pod, self.cfg.work_dir / "pods", self.base_env(), self.network
            )
            self.runners[uid] = runner
            self.pod_logs[(pod["metadata"]["namespace"], pod["metadata"]["name"])] = PodLogs(
                runner.dir, runner.container_names, runner.log_copying
            )
            runner.start()

    def _forget(self, uid: str) -> None:
        runner = self.runners.pop(uid, None)
        if runner is not None and not runner.finished.is_set():
            runner.request_stop(0, delete=False)

    def _stop_all(self) -> None:
        for runner in self.runners.values():
            runner.request_stop(2.0, delete=False)
        for runner in self.runners.values():
            runner.join(timeout=5)

    def stop(self, *_: object) -> None:
        self.stopping.set()
        if self._watch is not None:
            self._watch.stop()


class _Stopped(BaseException):
    """Raised by the first SIGTERM/SIGINT in the main thread: a pod watch blocked in a read
    would otherwise only notice the stop at its next event, and the cluster's `down` would
    SIGKILL the agent before it removed its pods and their networks."""


def serve(cfg: NodeConfig) -> None:
    agent = NodeAgent(cfg)

    def on_signal(*_: object) -> None:
        if not agent.stopping.is_set():
            agent.stop()
            raise _Stopped

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    with contextlib.suppress(_Stopped):
        agent.run()  # its `finally` stops the pods and removes the networks
