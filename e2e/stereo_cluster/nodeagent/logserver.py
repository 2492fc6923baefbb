"""The part of the kubelet API that `kubectl logs` needs: `GET /containerLogs/{ns}/{pod}/{c}`.

The API server calls it over HTTPS at the port the Node advertises in
`status.daemonEndpoints.kubeletEndpoint`, with its kubelet client certificate. As a kubelet
does, the agent authenticates that certificate against the cluster CA and asks the API
server (SubjectAccessReview, with the node's own credentials) whether its user may `get`
`nodes/proxy` on this node.
"""

from __future__ import annotations

import logging
import ssl
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from stereo_cluster.nodeagent.containerlogs import (
    LogQuery,
    LogQueryError,
    instance_path,
    instances,
    stream_log,
)

log = logging.getLogger(__name__)
_AUTHZ_TTL = 60.0  # seconds a SubjectAccessReview answer is reused, as the kubelet caches


@dataclass(frozen=True)
class PodLogs:
    """Where a pod's logs are, and whether an instance of a container is still writing."""

    directory: Path
    containers: tuple[str, ...]
    copying: Callable[[str, int], bool]


class LogRequestError(Exception):
    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Identity:
    user: str
    groups: tuple[str, ...]


def identity(peer: dict[str, Any] | None) -> Identity:
    """The user (CN) and groups (O) of a verified client certificate."""
    if not peer:
        raise LogRequestError(HTTPStatus.UNAUTHORIZED, "a client certificate is required")
    attrs = [attr for rdn in peer.get("subject", ()) for attr in rdn]
    users = [value for key, value in attrs if key == "commonName"]
    if not users:
        raise LogRequestError(HTTPStatus.UNAUTHORIZED, "the client certificate has no CN")
    return Identity(users[0], tuple(value for key, value in attrs if key == "organizationName"))


class Authorizer:
    """`get nodes/proxy` on this node, decided by the API server (webhook authorization)."""

    def __init__(self, api: client.ApiClient, node: str) -> None:
        self.auth = client.AuthorizationV1Api(api)
        self.node = node
        self._cache: dict[Identity, tuple[bool, float]] = {}
        self._lock = threading.Lock()

    def allowed(self, who: Identity) -> bool:
        with self._lock:
            cached = self._cache.get(who)
        if cached is not None and cached[1] > time.monotonic():
            return cached[0]
        review = {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SubjectAccessReview",
            "spec": {
                "user": who.user,
                "groups": list(who.groups),
                "resourceAttributes": {
                    "verb": "get",
                    "resource": "nodes",
                    "subresource": "proxy",
                    "name": self.node,
                },
            },
        }
        answer = bool(self.auth.create_subject_access_review(review).status.allowed)
        with self._lock:
            self._cache[who] = (answer, time.monotonic() + _AUTHZ_TTL)
        return answer


def resolve(pod: PodLogs, namespace: str, name: str, container: str, previous: bool) -> int:
    """The instance whose log answers the request (the latest, or the one before it)."""
    where = f"container {container!r} in pod {namespace}/{name}"
    if container not in pod.containers:
        raise LogRequestError(HTTPStatus.NOT_FOUND, f"{where} does not exist on this node")
    known = instances(pod.directory, container)
    if previous:
        if len(known) < 2:
            raise LogRequestError(HTTPStatus.BAD_REQUEST, f"previous terminated {where} not found")
        return known[-2]
    if not known:
        raise LogRequestError(HTTPStatus.BAD_REQUEST, f"{where} is waiting to start")
    return known[-1]


class LogServer:
    """An HTTPS server on 127.0.0.1 (the node's InternalIP) in a daemon thread."""

    def __init__(
        self,
        locate: Callable[[str, str], PodLogs | None],
        authorizer: Authorizer,
        cert: Path,
        key: Path,
        client_ca: Path,
        port: int = 0,
    ) -> None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        context.load_verify_locations(cafile=str(client_ca))
        context.verify_mode = ssl.CERT_REQUIRED
        attrs = {"locate": staticmethod(locate), "authorizer": authorizer}
        handler = type("Handler", (_Handler,), attrs)
        self.httpd = _Server(("127.0.0.1", port), handler)
        # The TLS handshake happens on the first read, in the request's own thread, so a
        # slow or broken client cannot stall the accept loop.
        self.httpd.socket = context.wrap_socket(
            self.httpd.socket, server_side=True, do_handshake_on_connect=False
        )
        self.port = int(self.httpd.server_address[1])
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def start(self) -> None:
        self._thread.start()
        log.info("kubelet API (container logs) on https://127.0.0.1:%d", self.port)

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        # A refused handshake or a follower that went away: nothing to report to anyone.
        log.debug("kubelet API request from %s failed", client_address, exc_info=True)


class _Handler(BaseHTTPRequestHandler):
    locate: Callable[[str, str], PodLogs | None]
    authorizer: Authorizer
    timeout = 60  # seconds a silent client (or one that stopped reading) may hold a thread

    def do_GET(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        try:
            who = identity(self.connection.getpeercert())
            if not self.authorizer.allowed(who):
                raise LogRequestError(
                    HTTPStatus.FORBIDDEN,
                    f"user {who.user!r} may not get nodes/proxy on {self.authorizer.node}",
                )
            parts = url.path.strip("/").split("/")
            if len(parts) != 4 or parts[0] != "containerLogs":
                raise LogRequestError(HTTPStatus.NOT_FOUND, f"{url.path}: not served here")
            query = LogQuery.parse(urllib.parse.parse_qs(url.query, keep_blank_values=True))
            _, namespace, name, container = parts
            pod = self.locate(namespace, name)
            if pod is None:
                raise LogRequestError(
                    HTTPStatus.NOT_FOUND, f"pod {namespace}/{name} is not on this node"
                )
            instance = resolve(pod, namespace, name, container, query.previous)
        except LogQueryError as exc:
            return self._fail(HTTPStatus.BAD_REQUEST, str(exc))
        except LogRequestError as exc:
            return self._fail(exc.status, str(exc))
        except ApiException as exc:
            message = f"authorization check failed: {exc.status} {exc.reason}"
            return self._fail(HTTPStatus.SERVICE_UNAVAILABLE, message)
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", "text/plain")
        self.end_headers()
        stream_log(
            instance_path(pod.directory, container, instance),
            query,
            self._write,
            lambda: pod.copying(container, instance),
        )

    def _write(self, data: bytes) -> None:
        self.wfile.write(data)
        self.wfile.flush()

    def _fail(self, status: HTTPStatus, message: str) -> None:
        body = message.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("kubelet API: " + format, *args)
