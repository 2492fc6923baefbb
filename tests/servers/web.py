"""A real web server for http(s):// sources: files in memory, served with or without byte
ranges, validators and preconditions, and with faults on request (5xx, resets, short bodies).

with WebServer() as web:
    web.put("film.mp4", data)                    # Range, ETag, Last-Modified, If-Match
    web.put("plain.mp4", data, ranges=False)     # 200 to everything, no Accept-Ranges
    web.fail("film.mp4", "503", "reset", "short")  # the next three GETs of it
    url = web.url("film.mp4")
"""

from __future__ import annotations

import re
import socket
import ssl
import struct
import sys
import threading
from dataclasses import dataclass, field
from email.utils import formatdate, parsedate_to_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Self
from urllib.parse import unquote, urlsplit

from .process import HOST

FAULTS = ("503", "429", "reset", "short")
_RANGE = re.compile(r"bytes=(\d+)-(\d*)")
_EPOCH = 1_700_000_000  # Last-Modified of version 1; each replacement is a minute later


@dataclass
class Served:
    data: bytes
    ranges: bool = True  # 206 to a Range request and Accept-Ranges: bytes; else 200, whole
    etag: bool = True
    last_modified: bool = True
    preconditions: bool = True  # honour If-Match and If-Unmodified-Since (412)
    status: int | None = None  # answer every GET with this status instead
    version: int = 1
    faults: list[str] = field(default_factory=list)

    @property
    def etag_value(self) -> str:
        return f'"v{self.version}-{len(self.data)}"'

    @property
    def modified(self) -> float:
        return _EPOCH + 60 * self.version


@dataclass(frozen=True)
class WebRequest:
    path: str
    headers: dict[str, str]
    status: int | None  # None: a fault that sent no status line


class WebServer:
    """A threaded HTTP(S) server on ``host``; ``requests`` lists every GET it answered."""

    def __init__(self, host: str = HOST, tls: tuple[Path, Path] | None = None) -> None:
        self.files: dict[str, Served] = {}
        self.redirects: dict[str, str] = {}
        self.requests: list[WebRequest] = []
        self._lock = threading.Lock()
        self._server = _QuietServer((host, 0), _handler(self))
        if tls is not None:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(*tls)
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self.scheme = "https" if tls else "http"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._thread.join()
        self._server.server_close()

    @property
    def base(self) -> str:
        host, port = self._server.server_address[:2]
        return f"{self.scheme}://{host}:{port}"

    def url(self, name: str) -> str:
        return f"{self.base}/{name}"

    def put(self, name: str, data: bytes, **options: Any) -> str:
        with self._lock:
            self.files[name] = Served(data, **options)
        return self.url(name)

    def replace(self, name: str, data: bytes) -> None:
        """A new version: new content, ETag and Last-Modified."""
        with self._lock:
            served = self.files[name]
            served.data, served.version = data, served.version + 1

    def fail(self, name: str, *faults: str) -> None:
        """The next GETs of ``name`` fail, one fault each, in order."""
        assert set(faults) <= set(FAULTS), faults
        with self._lock:
            self.files[name].faults.extend(faults)

    def last_modified(self, name: str) -> str:
        return formatdate(self.files[name].modified, usegmt=True)

    def gets(self, name: str) -> list[WebRequest]:
        with self._lock:
            return [r for r in self.requests if r.path == f"/{name}"]


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A reader that hangs up (the first-byte probe of a server without ranges) is routine.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


def _handler(web: WebServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            path = urlsplit(self.path).path
            name = unquote(path.removeprefix("/"))
            with web._lock:
                served = web.files.get(name)
                fault = served.faults.pop(0) if served and served.faults else None
                target = web.redirects.get(name)
                snapshot = None if served is None else Served(**vars(served))
            self._answer(snapshot, fault, target)

        def _record(self, status: int | None) -> None:
            # Before the answer goes out: a client that has it finds it in the list.
            with web._lock:
                web.requests.append(
                    WebRequest(urlsplit(self.path).path, dict(self.headers), status)
                )

        def _answer(self, served: Served | None, fault: str | None, target: str | None) -> None:
            if target is not None:
                self._head(302, {"Location": target, "Content-Length": "0"})
                return
            if served is None:
                self._head(404, {"Content-Length": "0"})
                return
            if served.status is not None:
                self._head(served.status, {"Content-Length": "0"})
                return
            if fault in ("503", "429"):
                self._head(int(fault), {"Content-Length": "0"})
                return
            if fault == "reset":
                self._record(None)
                # An RST, not a FIN: SO_LINGER with a zero timeout.
                self.connection.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                )
                self.close_connection = True
                return
            validators = self._validators(served)
            if served.preconditions and self._changed(served):
                self._head(412, {**validators, "Content-Length": "0"})
                return
            data, size = served.data, len(served.data)
            headers = {**validators, "Content-Type": "video/mp4"}
            status, start, end = 200, 0, size
            match = _RANGE.fullmatch(self.headers.get("Range", ""))
            if served.ranges:
                headers["Accept-Ranges"] = "bytes"
                if match is not None:
                    start = int(match.group(1))
                    if start >= size:
                        headers["Content-Range"] = f"bytes */{size}"
                        self._head(416, {**headers, "Content-Length": "0"})
                        return
                    end = min(int(match.group(2)) + 1, size) if match.group(2) else size
                    status = 206
                    headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
            headers["Content-Length"] = str(end - start)
            self._head(status, headers)
            body = data[start:end]
            if fault == "short":
                body = body[: len(body) // 2]
                self.close_connection = True
            try:
                self.wfile.write(body)
            except OSError:
                self.close_connection = True  # the reader hung up (the probe does)

        def _validators(self, served: Served) -> dict[str, str]:
            headers = {}
            if served.etag:
                headers["ETag"] = served.etag_value
            if served.last_modified:
                headers["Last-Modified"] = formatdate(served.modified, usegmt=True)
            return headers

        def _changed(self, served: Served) -> bool:
            match = self.headers.get("If-Match")
            if match is not None and served.etag and match.strip() not in ("*", served.etag_value):
                return True
            since = self.headers.get("If-Unmodified-Since")
            return bool(
                since is not None
                and served.last_modified
                and served.modified > parsedate_to_datetime(since).timestamp()
            )

        def _head(self, status: int, headers: dict[str, str]) -> None:
            self._record(status)
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.end_headers()

    return Handler
