"""A real HTTP server that records what is pushed to it, standing in for a Pushgateway."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass(frozen=True)
class Push:
    method: str
    path: str
    content_type: str
    body: str


@dataclass
class Recorder:
    url: str
    status: int = 200
    pushes: list[Push] = field(default_factory=list)


@contextmanager
def pushgateway(status: int = 200) -> Iterator[Recorder]:
    """Answers every PUT/POST with ``status`` and records it."""
    recorder = Recorder(url="")

    class Handler(BaseHTTPRequestHandler):
        def _record(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length).decode()
            content_type = self.headers.get("Content-Type", "")
            recorder.pushes.append(Push(self.command, self.path, content_type, body))
            self.send_response(recorder.status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_PUT = do_POST = _record

        def log_message(self, format: str, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    recorder.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    recorder.status = status
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield recorder
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(10)
