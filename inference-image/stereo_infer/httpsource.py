"""Reading http:// and https:// sources: ranged GETs of one version of the object.

``HttpObject.probe`` asks for the first byte (a GET, not a HEAD: a presigned URL is signed
for GET alone) and learns the size, whether the server serves byte ranges (it answers 206)
and the object's validators, its ETag and Last-Modified: the ``Pin``. Every later request
sends them back as preconditions (If-Match, If-Unmodified-Since) and every answer is checked
against them, so a source replaced while a VideoJob reads it fails with
``SourceChangedError``, never a film made of two files.

The pin travels from the plan to the Jobs in the URI's fragment, which is never sent to a
server: ``https://host/film.mp4#pin-size=5230080&pin-etag=%22665f-61a%22``.

Each method makes one try and raises a classified error (``TransientError`` for what may
pass: 5xx, 429, resets, short bodies); ``stereo_infer.io.retrying`` and the source server
retry.
"""

from __future__ import annotations

import base64
import functools
import http.client
import re
import ssl
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, fields, replace
from pathlib import Path
from urllib.parse import (
    SplitResult,
    parse_qsl,
    unquote,
    urlencode,
    urljoin,
    urlsplit,
    urlunsplit,
)

from stereo_infer.errors import (
    BadInputError,
    InputNotFoundError,
    SourceChangedError,
    StereoInferError,
    TransientError,
)
from stereo_types.base import MAX_URI_LENGTH

HTTP_SCHEMES = frozenset({"http", "https"})

# Seconds to connect, and between two reads of a response, before a try counts as failed.
TIMEOUT = 30.0
MAX_REDIRECTS = 5
_CHUNK = 1024 * 1024
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_TRANSIENT = frozenset({408, 425, 429})
_PIN_PREFIX = "pin-"
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")


@dataclass(frozen=True)
class Pin:
    """One version of an object: what every answer about it must show again."""

    size: int | None = None
    etag: str | None = None
    modified: str | None = None  # Last-Modified, as the server wrote it

    @classmethod
    def from_fragment(cls, fragment: str) -> Pin:
        """The pin a URI's fragment carries; an empty pin for any other fragment."""
        values = {
            key.removeprefix(_PIN_PREFIX): value
            for key, value in parse_qsl(fragment)
            if key.startswith(_PIN_PREFIX)
        }
        size = values.get("size", "")
        return cls(
            size=int(size) if size.isdigit() else None,
            etag=values.get("etag"),
            modified=values.get("modified"),
        )

    def fragment(self) -> str:
        known = [(f.name, getattr(self, f.name)) for f in fields(self)]
        return urlencode([(_PIN_PREFIX + name, str(v)) for name, v in known if v is not None])

    def preconditions(self) -> dict[str, str]:
        """Headers that make the server refuse (412) a version other than this one."""
        headers = {}
        # If-Match compares strongly: a weak ETag would never match.
        if self.etag is not None and not self.etag.startswith("W/"):
            headers["If-Match"] = self.etag
        if self.modified is not None:
            headers["If-Unmodified-Since"] = self.modified
        return headers

    def check(self, seen: Pin, display: str) -> None:
        """Raise SourceChangedError unless ``seen`` agrees wherever both say something."""
        for f in fields(self):
            mine, theirs = getattr(self, f.name), getattr(seen, f.name)
            if mine is not None and theirs is not None and mine != theirs:
                raise SourceChangedError(
                    f"{display} changed while the VideoJob read it ({_LABELS[f.name]} was"
                    f" {mine}, now {theirs}): a VideoJob reads its source several times and"
                    " needs it to stay as it is; create a new VideoJob"
                )

    def union(self, other: Pin) -> Pin:
        """This pin, with what it lacks taken from ``other``."""
        mine = {f.name: getattr(self, f.name) for f in fields(self)}
        return replace(other, **{k: v for k, v in mine.items() if v is not None})


_LABELS = {"size": "size", "etag": "ETag", "modified": "Last-Modified"}


def is_http(uri: str) -> bool:
    return urlsplit(uri).scheme.lower() in HTTP_SCHEMES


def display_url(url: str) -> str:
    """``url`` for messages and logs: no credentials, no query (a signature), no fragment."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    if parts.port is not None:
        netloc += f":{parts.port}"
    query = "?..." if parts.query else ""
    return f"{urlunsplit((parts.scheme, netloc, parts.path, '', ''))}{query}"


@dataclass(frozen=True)
class HttpObject:
    """An object on a web server, and what is known of its version."""

    url: str  # what is requested: the URI less its fragment
    pin: Pin = Pin()
    ranges: bool = False  # the server answers a Range request with 206

    @classmethod
    def at(cls, uri: str) -> HttpObject:
        """The object ``uri`` names, pinned to the version its fragment names, if any."""
        parts = urlsplit(uri)
        if parts.scheme.lower() not in HTTP_SCHEMES or not parts.hostname:
            raise BadInputError(f"not an http(s) URL: {display_url(uri)}")
        return cls(urlunsplit(parts._replace(fragment="")), Pin.from_fragment(parts.fragment))

    @property
    def display(self) -> str:
        return display_url(self.url)

    @property
    def size(self) -> int | None:
        return self.pin.size

    @property
    def name(self) -> str:
        """The last part of the URL's path, as a file name (ffmpeg guesses some containers
        from it)."""
        last = unquote(urlsplit(self.url).path.rstrip("/").rsplit("/", 1)[-1])
        name = last.replace("/", "_").replace("\0", "_")
        return "input" if name in ("", ".", "..") else name

    @property
    def uri(self) -> str:
        """A URI naming this object pinned to this version, for the Jobs that read it later;
        a URL near the length a plan may hold carries what of the pin fits."""
        for pin in (self.pin, replace(self.pin, modified=None), Pin(size=self.pin.size)):
            fragment = pin.fragment()
            pinned = f"{self.url}#{fragment}" if fragment else self.url
            if len(pinned) <= MAX_URI_LENGTH:
                return pinned
        return self.url

    def probe(self) -> HttpObject:
        """This object with its version pinned and its range support known (one GET)."""
        headers = {"Range": "bytes=0-0", **self.pin.preconditions()}
        with _get(self.url, headers) as response:
            if response.status == 416:
                raise BadInputError(f"{self.display} is empty")
            if response.status not in (200, 206):
                raise self._status_error(response)
            seen = _seen(response)
            # A 200 comes with the whole body: the connection is closed unread.
        self.pin.check(seen, self.display)
        return replace(self, pin=self.pin.union(seen), ranges=response.status == 206)

    def read_range(self, start: int, end: int) -> Iterator[bytes]:
        """Bytes [start, end) of the pinned version, in chunks (asked on the first next())."""
        headers = {"Range": f"bytes={start}-{end - 1}", **self.pin.preconditions()}
        with _get(self.url, headers) as response:
            if response.status == 416:  # shorter than pinned
                raise SourceChangedError(f"{self.display} no longer has byte {start}")
            if response.status != 206:
                raise self._range_error(response)
            seen = _seen(response)
            self.pin.check(seen, self.display)
            first = _content_range(response)[0]
            if first != start:
                raise TransientError(f"{self.display} sent byte {first} for byte {start}")
            yield from _body(response, end - start, self.display)

    def download(self, path: Path) -> HttpObject:
        """The whole object written to ``path``; returns this object with its size pinned."""
        with _get(self.url, self.pin.preconditions()) as response:
            if response.status != 200:
                raise self._status_error(response)
            seen = _seen(response)
            self.pin.check(seen, self.display)
            with path.open("wb") as out:
                size = 0
                for chunk in _body(response, seen.size, self.display):
                    out.write(chunk)
                    size += len(chunk)
        pinned = self.pin.union(seen)
        self.pin.check(Pin(size=size), self.display)
        return replace(self, pin=replace(pinned, size=size))

    def _range_error(self, response: http.client.HTTPResponse) -> StereoInferError:
        if response.status != 200:
            return self._status_error(response)
        # The server answered the preconditions with the whole object: it ignored the
        # range (a changed version would have been refused, or shows in its validators).
        self.pin.check(_seen(response), self.display)
        return TransientError(f"{self.display} answered a Range request with the whole object")

    def _status_error(self, response: http.client.HTTPResponse) -> StereoInferError:
        return status_error(self.display, response.status, response.reason)


def status_error(display: str, status: int, reason: str) -> StereoInferError:
    """The error an unwanted HTTP status means."""
    said = f"HTTP {status} {reason}".rstrip()
    if status in (404, 410):
        return InputNotFoundError(f"input not found: {display} ({said})")
    if status in (401, 403):
        return BadInputError(f"access denied to {display} ({said}); a signed URL may have expired")
    if status == 412:
        return SourceChangedError(
            f"{display} changed while the VideoJob read it ({said} to the version first"
            " read): a VideoJob reads its source several times and needs it to stay as it is;"
            " create a new VideoJob"
        )
    if status in _TRANSIENT or status >= 500:
        return TransientError(f"cannot read {display} ({said})")
    return BadInputError(f"cannot read {display} ({said})")


def _seen(response: http.client.HTTPResponse) -> Pin:
    """The version an answer describes: its validators, and the whole object's size."""
    if response.status == 206:
        size = _content_range(response)[2]
    else:
        length = response.getheader("Content-Length", "")
        size = int(length) if length.isdigit() else None
    return Pin(size, response.getheader("ETag"), response.getheader("Last-Modified"))


def _content_range(response: http.client.HTTPResponse) -> tuple[int, int, int | None]:
    header = response.getheader("Content-Range", "")
    match = _CONTENT_RANGE.fullmatch(header.strip())
    if match is None:
        raise TransientError(f"a 206 answer with a bad Content-Range: {header!r}")
    first, last, total = match.groups()
    return int(first), int(last), None if total == "*" else int(total)


def _body(response: http.client.HTTPResponse, length: int | None, display: str) -> Iterator[bytes]:
    """The response's body (``length`` bytes, or to its end when None); short is transient."""
    received = 0
    while length is None or received < length:
        want = _CHUNK if length is None else min(_CHUNK, length - received)
        chunk = response.read(want)
        if not chunk:
            if length is None:
                return
            raise TransientError(
                f"{display}: the answer ended after {received} of its {length} bytes"
            )
        received += len(chunk)
        yield chunk


@contextmanager
def _get(url: str, headers: Mapping[str, str]) -> Iterator[http.client.HTTPResponse]:
    """The answer to a GET of ``url``, redirects followed; its connection closes after."""
    origin = urlsplit(url)
    for _ in range(MAX_REDIRECTS + 1):
        parts = urlsplit(url)
        conn = _connection(parts.scheme.lower(), parts.hostname or "", parts.port)
        try:
            sent = {"User-Agent": "stereo-infer", "Accept-Encoding": "identity", **headers}
            # Credentials in the URL go to its own host only, not where it redirects.
            if parts.username is not None and parts.netloc == origin.netloc:
                sent["Authorization"] = _basic_auth(parts.username, parts.password or "")
            response = _send(conn, parts, sent)
            location = response.getheader("Location")
            if response.status in _REDIRECTS and location:
                url = urljoin(url, location)
                continue
            yield response
            return
        finally:
            conn.close()
    raise BadInputError(f"{display_url(origin.geturl())}: more than {MAX_REDIRECTS} redirects")


def _send(
    conn: http.client.HTTPConnection, parts: SplitResult, headers: Mapping[str, str]
) -> http.client.HTTPResponse:
    """One GET's status line and headers; the body is left to read."""
    target = parts.path or "/"
    if parts.query:
        target += f"?{parts.query}"
    display = display_url(parts.geturl())
    try:
        conn.request("GET", target, headers=dict(headers))
        return conn.getresponse()
    except ssl.SSLCertVerificationError as exc:
        raise BadInputError(f"cannot read {display}: {exc.verify_message}") from exc
    except http.client.InvalidURL as exc:
        raise BadInputError(f"cannot read {display}: {exc}") from exc
    except (OSError, http.client.HTTPException) as exc:
        # Refused, reset, timed out, a name that did not resolve (yet), a garbled answer.
        raise TransientError(f"cannot read {display}: {exc!r}") from exc


def _connection(scheme: str, host: str, port: int | None) -> http.client.HTTPConnection:
    if scheme == "https":
        return http.client.HTTPSConnection(host, port, timeout=TIMEOUT, context=_tls())
    if scheme == "http":
        return http.client.HTTPConnection(host, port, timeout=TIMEOUT)
    raise BadInputError(f"a redirect to {scheme}://{host}: only http and https are read")


@functools.cache
def _tls() -> ssl.SSLContext:
    # The system's CAs, or SSL_CERT_FILE / SSL_CERT_DIR where set.
    return ssl.create_default_context()


def _basic_auth(user: str, password: str) -> str:
    token = base64.b64encode(f"{unquote(user)}:{unquote(password)}".encode()).decode("ascii")
    return f"Basic {token}"
