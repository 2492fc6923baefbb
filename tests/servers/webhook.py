"""A tiny HTTP server that records the JSON POSTed to it (webhook notifications)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

from .process import HOST


@dataclass(frozen=True)
class ReceivedPost:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class WebhookReceiver:
    """Answers every POST with 200 and keeps it; ``wait_for`` blocks until a match."""

    def __init__(self) -> None:
        self.posts: list[ReceivedPost] = []
        self._cond = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver._cond:
                    receiver.posts.append(ReceivedPost(self.path, dict(self.headers), body))
                    receiver._cond.notify_all()
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass  # keep test output quiet

        self._server = ThreadingHTTPServer((HOST, 0), Handler)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self._server.server_address[1]}"

    def start(self) -> Self:
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def wait_for(
        self, match: Callable[[ReceivedPost], bool], timeout: float = 10.0
    ) -> ReceivedPost:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for post in self.posts:
                    if match(post):
                        return post
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"no matching POST within {timeout}s; got {len(self.posts)} others"
                    )
                self._cond.wait(left)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
