"""A small asyncio client for the few API calls the watcher makes.

Credentials come from the official client's loaders (kubeconfig, or the pod's
service-account token, which they refresh), requests go through one aiohttp session with a
hard timeout, so a stalled API server costs a timeout rather than a hung event.
"""

from __future__ import annotations

import json
import os
import ssl
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp

from stereo_types.names import GROUP, SEGMENT_PLURAL, VERSION, VIDEOJOB_PLURAL

JsonObject = dict[str, Any]
MERGE_PATCH = "application/merge-patch+json"


class ApiError(Exception):
    """A request failed; status is the HTTP status, or None if nothing answered."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class ApiUnavailable(ApiError):
    """No usable answer (connection refused, timeout, 5xx, 429): worth retrying."""


class ApiForbidden(ApiUnavailable):
    """401 or 403: credentials or RBAC are wrong. Retried rather than dropped, so nothing is
    lost while an administrator fixes them."""


class ApiConflict(ApiError):
    """409: the object changed since it was read."""


class ApiNotFound(ApiError):
    """404: the object does not exist."""


class ApiRejected(ApiError):
    """A permanent refusal (400, 422...): retrying the same request cannot help."""


def _classify(status: int, message: str) -> ApiError:
    if status == 404:
        return ApiNotFound(message, status)
    if status == 409:
        return ApiConflict(message, status)
    if status in (401, 403):
        return ApiForbidden(message, status)
    if status in (408, 429) or status >= 500:
        return ApiUnavailable(message, status)
    return ApiRejected(message, status)


def segment_path(namespace: str, name: str) -> str:
    return f"/apis/{GROUP}/{VERSION}/namespaces/{quote(namespace)}/{SEGMENT_PLURAL}/{quote(name)}"


def videojob_path(namespace: str, name: str) -> str:
    return f"/apis/{GROUP}/{VERSION}/namespaces/{quote(namespace)}/{VIDEOJOB_PLURAL}/{quote(name)}"


class KubeClient:
    """GET and merge-PATCH against one API server; records when it last answered."""

    def __init__(
        self,
        host: str,
        ssl_context: ssl.SSLContext | None,
        authorization: Callable[[], str | None],
        timeout: float,
        max_connections: int = 32,
    ) -> None:
        self.host = host.rstrip("/")
        self._ssl: ssl.SSLContext | bool = ssl_context if ssl_context is not None else False
        self._authorization = authorization
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None
        self.last_answer: float | None = None
        """time.monotonic() of the last answer that was not 5xx or 429."""

    @classmethod
    def from_kubeconfig(
        cls, kubeconfig: Path | None, timeout: float, max_connections: int = 32
    ) -> KubeClient:
        """Credentials as kubectl finds them: the file, $KUBECONFIG, in-cluster, ~/.kube/config."""
        from kubernetes import client, config

        cfg = client.Configuration()
        if kubeconfig is None and not os.environ.get("KUBECONFIG"):
            if os.environ.get("KUBERNETES_SERVICE_HOST"):
                config.load_incluster_config(client_configuration=cfg)
            else:
                config.load_kube_config(client_configuration=cfg, persist_config=False)
        else:
            config.load_kube_config(
                config_file=str(kubeconfig) if kubeconfig else None,
                client_configuration=cfg,
                persist_config=False,
            )
        context: ssl.SSLContext | None = None
        if str(cfg.host).startswith("https"):
            context = ssl.create_default_context(cafile=cfg.ssl_ca_cert or None)
            if cfg.cert_file:
                context.load_cert_chain(cfg.cert_file, cfg.key_file)
            if not cfg.verify_ssl:
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE

        def authorization() -> str | None:
            # Calls the loader's refresh hook: in-cluster tokens are rotated on disk.
            value = cfg.get_api_key_with_prefix("BearerToken", alias="authorization")
            return str(value) if value else None

        return cls(str(cfg.host), context, authorization, timeout, max_connections)

    async def __aenter__(self) -> KubeClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=self._max_connections)
            self._session = aiohttp.ClientSession(connector=connector, timeout=self._timeout)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def request(
        self,
        method: str,
        path: str,
        body: JsonObject | None = None,
        content_type: str = "application/json",
    ) -> JsonObject:
        headers = {"Accept": "application/json"}
        auth = self._authorization()
        if auth:
            headers["Authorization"] = auth
        data = None
        if body is not None:
            headers["Content-Type"] = content_type
            data = json.dumps(body).encode()
        what = f"{method} {path}"
        try:
            async with self._get_session().request(
                method, self.host + path, data=data, headers=headers, ssl=self._ssl
            ) as response:
                payload = await response.read()
                status = response.status
        except TimeoutError:
            raise ApiUnavailable(f"{what}: no answer within {self._timeout.total}s") from None
        except (aiohttp.ClientError, OSError) as exc:
            raise ApiUnavailable(f"{what}: {type(exc).__name__}: {exc}") from None
        error = None if 200 <= status < 300 else _classify(status, f"{what}: HTTP {status}")
        if not isinstance(error, ApiUnavailable) or isinstance(error, ApiForbidden):
            self.last_answer = time.monotonic()
        if error is None:
            try:
                decoded = json.loads(payload) if payload else {}
            except json.JSONDecodeError:
                raise ApiUnavailable(f"{what}: answer is not JSON", status) from None
            return decoded if isinstance(decoded, dict) else {"value": decoded}
        raise _classify(status, f"{what}: HTTP {status}: {_reason(payload)}")

    async def get(self, path: str) -> JsonObject | None:
        """The object, or None if it does not exist."""
        try:
            return await self.request("GET", path)
        except ApiNotFound:
            return None

    async def merge_patch(self, path: str, patch: JsonObject) -> JsonObject:
        return await self.request("PATCH", path, patch, MERGE_PATCH)

    async def probe(self) -> bool:
        """Whether the API server answers (GET /version, allowed to every user)."""
        try:
            await self.request("GET", "/version")
        except ApiUnavailable:
            return False
        except ApiError:
            return True  # it answered
        return True


def _reason(payload: bytes) -> str:
    try:
        status = json.loads(payload)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return payload[:200].decode("utf-8", "replace")
    if isinstance(status, dict) and status.get("message"):
        return str(status["message"])[:500]
    return payload[:200].decode("utf-8", "replace")
