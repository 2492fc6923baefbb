"""Reading a source video in place: ffmpeg opens s3://, gs:// and http(s):// objects over HTTP.

A Job needs only its own part of a source that may be hundreds of gigabytes, so instead
of downloading it, ``open_source`` serves the object on 127.0.0.1 from inside this
process and ffmpeg reads it with Range requests, as it would a web server's file. Each
request becomes a ranged read through ``stereo_storage`` (so the store's credentials and
endpoint settings apply unchanged) or, for an http(s):// source, a ranged GET of the
version first read (``stereo_infer.httpsource``); either way the retries are this
module's, and ffmpeg only ever talks to 127.0.0.1. A web server that does not serve byte
ranges is downloaded once, to local scratch, and read from there. Local paths and
``file://`` URIs are given to ffmpeg as they are.

with open_source("s3://bucket/movie.mp4") as source:
    subprocess.run(["ffmpeg", *FFMPEG_HTTP_INPUT_ARGS, "-ss", "600", "-i", source.url, ...])
"""

from __future__ import annotations

import functools
import itertools
import logging
import re
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import quote

from stereo_infer.errors import (
    InputNotFoundError,
    SourceChangedError,
    StereoInferError,
    TransientError,
)
from stereo_infer.httpsource import HttpObject, is_http
from stereo_infer.io import (
    READ_ATTEMPTS,
    is_local,
    local_path,
    retry_delay,
    retrying,
    scheme_of,
    storage_error,
    store_for,
)
from stereo_storage import StorageError

_log = logging.getLogger(__name__)

# Input options for an http:// source (ffmpeg and ffprobe). None is needed for seeking:
# every answer carries Content-Length and Accept-Ranges, so ffmpeg finds the input
# seekable by itself. But should a response end early (the store failed past the
# server's own retries), ffmpeg 5 without -reconnect only warns "Stream ends
# prematurely" and exits 0 with the frames it has; with it, ffmpeg asks again from
# the byte it stopped at (after 0, 1, 3 and 7 s, then it fails).
FFMPEG_HTTP_INPUT_ARGS: list[str] = ["-reconnect", "1", "-reconnect_delay_max", "10"]

# ffmpeg asks for "everything from here" and hangs up when it seeks, several times
# while it opens a file. So the store is read in windows that start small and grow
# while the reader keeps reading: a seek leaves at most one window unread, not the
# megabytes a socket would have buffered from an open-ended GET.
_FIRST_WINDOW = 1024 * 1024
_MAX_WINDOW = 4 * 1024 * 1024
# Likewise on the reader's side: an autotuned send buffer grows to megabytes that a
# seek throws away. This is plenty on loopback.
_SEND_BUFFER = 256 * 1024
_WRITE_SIZE = 64 * 1024

_RANGE = re.compile(r"bytes=(\d*)-(\d*)")


class _Unsatisfiable(Exception):
    """A Range that selects nothing of the object: answered 416."""


def _parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The span [start, end) a Range header asks for, or None to send the whole object.

    As RFC 9110 allows, a header this server does not understand (malformed, another
    unit, several ranges) is ignored rather than refused.
    """
    match = _RANGE.fullmatch(header.strip()) if header else None
    if match is None or match.group(1) == match.group(2) == "":
        return None
    first, last = match.groups()
    if first == "":  # a suffix: the last N bytes
        wanted = int(last)
        if wanted == 0 or size == 0:
            raise _Unsatisfiable
        return max(size - wanted, 0), size
    start = int(first)
    if last != "" and int(last) < start:
        return None  # invalid, hence ignored
    if start >= size:
        raise _Unsatisfiable
    return start, size if last == "" else min(int(last) + 1, size)


class _ByteCounter:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._total = 0

    def add(self, count: int) -> None:
        with self._lock:
            self._total += count

    @property
    def total(self) -> int:
        with self._lock:
            return self._total


@dataclass
class OpenSource:
    """What ffmpeg and ffprobe open, while ``open_source``'s block lasts."""

    url: str  # a local path, or http://127.0.0.1:PORT/source/<name>
    size: int  # bytes
    # The source's URI for the Jobs that read it later: file:// for a local path, and for
    # an http(s):// source pinned to the version read here (stereo_infer.httpsource).
    uri: str
    _served: _ByteCounter | None = field(default=None, repr=False, compare=False)

    def bytes_read(self) -> int:
        """Bytes sent to readers so far; 0 for a local path, which is read directly."""
        return 0 if self._served is None else self._served.total


# Bytes [start, end) of the object, in chunks, asked for on the first next(); a failure
# raises a stereo_storage error or a classified stereo_infer one.
ReadRange = Callable[[int, int], Iterator[bytes]]


@dataclass
class _RemoteObject:
    read_range: ReadRange
    uri: str  # for messages
    size: int
    path: str  # the URL path it is served at
    served: _ByteCounter
    # The first error meaning the object is gone or not the one first read: whatever a
    # reader makes of the failed answer, open_source raises this.
    lost: StereoInferError | None = None

    def chunks(self, start: int, end: int) -> Iterator[bytes]:
        """Bytes [start, end), retrying a failed read from the byte it stopped at."""
        pos, window, failures = start, _FIRST_WINDOW, 0
        while pos < end:
            stop = min(pos + window, end)
            try:
                for chunk in self.read_range(pos, stop):
                    pos += len(chunk)
                    failures = 0
                    yield chunk
                if pos < stop:
                    # Shorter than its stat: replaced since. Not worth another try.
                    raise StorageError(f"{self.uri} ended at byte {pos} of {end}", uri=self.uri)
                window = min(window * 2, _MAX_WINDOW)
            except Exception as exc:
                error = storage_error(exc, f"cannot read {self.uri}")
                failures += 1
                if not isinstance(error, TransientError) or failures >= READ_ATTEMPTS:
                    if isinstance(error, InputNotFoundError | SourceChangedError):
                        self.lost = self.lost or error
                    if error is exc:
                        raise
                    raise error from exc
                time.sleep(retry_delay(failures))


class _SourceServer(ThreadingHTTPServer):
    daemon_threads = True  # a reader still connected at exit must not block it

    def __init__(self, source: _RemoteObject) -> None:
        self.source = source
        super().__init__(("127.0.0.1", 0), _RangeHandler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A reader that hangs up between requests is routine; anything else is a bug.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class _RangeHandler(BaseHTTPRequestHandler):
    server: _SourceServer
    # Keep-alive is safe: every response carries a Content-Length, and one cut
    # short closes its connection.
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, _SEND_BUFFER)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # one line per seek would bury the Job's own output

    def do_HEAD(self) -> None:
        self._answer(send_body=False)

    def do_GET(self) -> None:
        self._answer(send_body=True)

    def _answer(self, *, send_body: bool) -> None:
        source = self.server.source
        if self.path.partition("?")[0] != source.path:
            self.send_error(HTTPStatus.NOT_FOUND)
            return
        try:
            span = _parse_range(self.headers.get("Range"), source.size)
        except _Unsatisfiable:
            self._send_head(HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE, 0, f"*/{source.size}")
            return
        start, end = span or (0, source.size)
        chunks = source.chunks(start, end) if send_body else iter(())
        try:
            # The first piece comes before the status line, so a store that
            # cannot be read at all is a 5xx that ffmpeg reports, not a short body.
            first = next(chunks, b"")
        except Exception as exc:
            _log.warning("%s", exc)
            self.send_error(HTTPStatus.BAD_GATEWAY, explain=str(exc))
            return
        if span is None:
            self._send_head(HTTPStatus.OK, end - start)
        else:
            self._send_head(
                HTTPStatus.PARTIAL_CONTENT, end - start, f"{start}-{end - 1}/{source.size}"
            )
        try:
            self._copy(itertools.chain([first], chunks))
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()

    def _send_head(self, status: HTTPStatus, length: int, content_range: str | None = None) -> None:
        self.send_response(status)
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(length))
        self.send_header("Content-Type", "application/octet-stream")
        if content_range is not None:
            self.send_header("Content-Range", f"bytes {content_range}")
        self.end_headers()

    def _copy(self, chunks: Iterator[bytes]) -> None:
        try:
            for chunk in chunks:
                if not self._write(memoryview(chunk)):
                    # The reader hung up, as ffmpeg does on every seek.
                    self.close_connection = True
                    return
        except Exception as exc:
            # The store kept failing mid-response: cut it short, so the reader
            # sees a broken transfer (and reconnects) rather than a wrong file.
            _log.warning("%s", exc)
            self.close_connection = True

    def _write(self, data: memoryview) -> bool:
        """Send ``data``, counting what the socket took; False once the reader is gone."""
        # In slices, so a hang-up mid-chunk still counts what went out before it.
        # Each is counted before it is sent, so once a reader has its bytes they
        # are in the count, and taken back out if the send fails.
        served = self.server.source.served
        for offset in range(0, len(data), _WRITE_SIZE):
            piece = data[offset : offset + _WRITE_SIZE]
            served.add(len(piece))
            try:
                self.wfile.write(piece)
            except OSError:
                served.add(-len(piece))
                return False
        return True


@contextmanager
def open_source(uri: str) -> Iterator[OpenSource]:
    """A URL ffmpeg can read ``uri`` from, valid inside the block.

    Raises InputNotFoundError when the object is missing, SourceChangedError when an
    http(s) source is not the version its URI pins (or first read), and the other
    stereo_infer errors ``fetch_input`` raises for a store that cannot be reached.
    """
    opener = _open_local if is_local(uri) else _open_http if is_http(uri) else _open_stored
    with opener(uri) as source:
        yield source


@contextmanager
def _open_local(uri: str) -> Iterator[OpenSource]:
    path = local_path(uri)
    if not path.is_file():
        raise InputNotFoundError(f"input not found: {uri}")
    # Later Jobs name it as a URI (another working directory).
    named = path.resolve().as_uri() if scheme_of(uri) == "" else uri
    yield OpenSource(str(path), path.stat().st_size, named)


@contextmanager
def _open_stored(uri: str) -> Iterator[OpenSource]:
    with store_for(uri) as store:
        try:
            stat = store.stat(uri)
        except Exception as exc:
            raise storage_error(exc, f"cannot read {uri}") from exc
        if stat is None:
            raise InputNotFoundError(f"input not found: {uri}")
        # The name ends the URL: ffmpeg guesses some containers from the extension.
        name = uri.rstrip("/").rsplit("/", 1)[-1] or "input"
        read_range = functools.partial(store.read_range, uri)
        with _served(read_range, uri, stat.size, name, uri) as source:
            yield source


@contextmanager
def _open_http(uri: str) -> Iterator[OpenSource]:
    """An http(s) source: served from its server's byte ranges, else from a local copy."""
    unread = HttpObject.at(uri)
    remote = retrying(unread.probe, f"cannot read {unread.display}")
    if remote.ranges and remote.size is not None:
        with _served(remote.read_range, remote.display, remote.size, remote.name, remote.uri) as s:
            yield s
        return
    _log.warning(
        "%s does not serve byte ranges: downloading it once, to local scratch", remote.display
    )
    with tempfile.TemporaryDirectory(prefix="stereo-source-") as tmp:
        path = Path(tmp) / remote.name
        copied = retrying(lambda: remote.download(path), f"cannot download {remote.display}")
        yield OpenSource(str(path), path.stat().st_size, copied.uri)


@contextmanager
def _served(
    read_range: ReadRange, label: str, size: int, name: str, uri: str
) -> Iterator[OpenSource]:
    """The object ``read_range`` reads, served on 127.0.0.1 as ``/source/<name>``."""
    source = _RemoteObject(read_range, label, size, f"/source/{quote(name)}", _ByteCounter())
    with _serving(source) as port:
        url = f"http://127.0.0.1:{port}{source.path}"
        try:
            yield OpenSource(url, source.size, uri, source.served)
        except Exception as exc:
            # ffmpeg's "Server returned 502" says less than why the server returned it.
            if source.lost is not None:
                raise source.lost from exc
            raise
    if source.lost is not None:
        raise source.lost


@contextmanager
def _serving(source: _RemoteObject) -> Iterator[int]:
    server = _SourceServer(source)
    thread = threading.Thread(
        target=server.serve_forever, name=f"source-server {source.uri}", daemon=True
    )
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        thread.join()
        server.server_close()
