"""``stereo-infer serve``: an HTTP inference server, SageMaker (asynchronous) compatible.

    GET  /ping         200 once the engine and its depth model are loaded,
                       503 while loading, 500 when loading failed
    POST /invocations  convert one segment (see ``stereo_infer.invocation``)

The engine and its default depth model load once, at start, in the
background (so ``/ping`` answers at once); every request then reuses them.
At most ``concurrency`` conversions run at a time (default one: one per
GPU); further requests wait their turn. Input is fetched and output
published through ``stereo_infer.io`` (file://, s3://, gs://); the output
object appears only once complete.

Responses are JSON. Success: 200 ``{"outputUri", "frames", "seconds",
"videoSeconds", "engine", "format", "depthModel"}`` where ``seconds`` is the
time the request took. Failures: ``{"error", "field"?, "exitCode"}`` with 400
for a malformed request (naming the field), 404 for a missing input, 422 for
input that cannot be converted, 503 for transient failures (storage, a busy
or missing GPU: retry) and 500 for internal errors. ``exitCode`` is what
``stereo-infer convert`` would have exited with.

Standard library only: ``http.server.ThreadingHTTPServer``.
"""

from __future__ import annotations

import json
import signal
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType
from typing import Any

from stereo_infer import exitcodes
from stereo_infer.conversion import ConversionRequest, NoFramesLeft, convert
from stereo_infer.encoding import VideoEncoding
from stereo_infer.engines import Engine, EngineOptions, get_engine
from stereo_infer.engines.formats import StereoFormat
from stereo_infer.errors import (
    BadInputError,
    InputNotFoundError,
    StereoInferError,
    TransientError,
)
from stereo_infer.invocation import (
    CUSTOM_ATTRIBUTES_HEADER,
    MAX_BODY_BYTES,
    InvocationRequest,
    RequestError,
    build_request,
    input_location,
    parse_json,
)
from stereo_infer.io import fetch_input
from stereo_types.backend import DEFAULT_ENGINE
from stereo_types.formats import DEFAULT_FORMAT

EngineFactory = Callable[[str, EngineOptions], Engine]


@dataclass(frozen=True)
class ServerConfig:
    host: str = "0.0.0.0"
    port: int = 8080
    engine: str = DEFAULT_ENGINE
    engine_options: EngineOptions = field(default_factory=EngineOptions)
    # Loaded at start; None: the engine's default.
    depth_model: str | None = None
    # Checked at start (requests may ask for any format the engine makes).
    stereo_format: StereoFormat = DEFAULT_FORMAT
    concurrency: int = 1
    show_progress: bool = True


@dataclass(frozen=True)
class InvocationResult:
    output_uri: str
    frames: int
    seconds: float
    video_seconds: float
    engine: str
    format: str
    depth_model: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "outputUri": self.output_uri,
            "frames": self.frames,
            "seconds": round(self.seconds, 3),
            "videoSeconds": round(self.video_seconds, 3),
            "engine": self.engine,
            "format": self.format,
            "depthModel": self.depth_model,
        }


class InferenceService:
    """The engine, its loading state and the concurrency gate; no HTTP here."""

    def __init__(self, config: ServerConfig, engine_factory: EngineFactory = get_engine) -> None:
        self.config = config
        self._engine_factory = engine_factory
        self._engine: Engine | None = None
        self._state = "loading"
        self._error: str | None = None
        self._loaded = threading.Event()
        self._gate = threading.BoundedSemaphore(config.concurrency)

    @property
    def state(self) -> str:
        return self._state

    @property
    def error(self) -> str | None:
        return self._error

    def load(self) -> None:
        """Create the engine and load its default model; record the outcome."""
        try:
            engine = self._engine_factory(self.config.engine, self.config.engine_options)
            engine.prepare(self.config.stereo_format, self.config.depth_model)
        except Exception as exc:
            self._error = f"{type(exc).__name__}: {exc}"
            self._state = "failed"
            print(f"stereo-infer serve: loading failed: {self._error}", file=sys.stderr)
        else:
            self._engine = engine
            self._state = "ready"
            print(
                f"stereo-infer serve: engine {engine.name} ready"
                f" (depth model: {self.config.depth_model or 'default'})",
                file=sys.stderr,
            )
        finally:
            self._loaded.set()

    def wait_loaded(self, timeout: float | None = None) -> bool:
        return self._loaded.wait(timeout)

    def drain(self, timeout: float) -> bool:
        """Wait until no conversion runs (and let none start); False on timeout."""
        deadline = time.monotonic() + timeout
        for _ in range(self.config.concurrency):
            if not self._gate.acquire(timeout=max(0.0, deadline - time.monotonic())):
                return False
        return True

    def invoke(self, request: InvocationRequest) -> InvocationResult:
        engine = self._engine
        if engine is None:
            if self._state == "failed":
                raise StereoInferError(f"the engine failed to load: {self._error}")
            raise TransientError("the engine is still loading; retry")
        if request.engine is not None and request.engine != engine.name:
            raise RequestError(
                "engine", f"this server runs engine {engine.name!r}, not {request.engine.value!r}"
            )
        stereo_format = request.format
        depth_model = request.depth_model or self.config.depth_model
        try:
            engine.prepare(stereo_format, depth_model)
        except BadInputError as exc:
            field_name = "stereo.depthModel" if request.depth_model else "format"
            raise RequestError(field_name, str(exc)) from None
        settings = request.encoding
        encoding = VideoEncoding(
            codec=settings.codec.value,
            crf=settings.crf,
            preset=settings.preset.value,
            encoder=settings.encoder.value,
        )
        try:
            encoding.available()
        except BadInputError as exc:
            raise RequestError("encoding.encoder", str(exc)) from None
        with self._gate:
            return self._convert(engine, request, stereo_format, depth_model, encoding)

    def _convert(
        self,
        engine: Engine,
        request: InvocationRequest,
        stereo_format: StereoFormat,
        depth_model: str | None,
        encoding: VideoEncoding,
    ) -> InvocationResult:
        conversion = ConversionRequest(
            input_uri=request.input_uri,
            output_uri=request.output_uri,
            stereo_format=stereo_format,
            divergence=request.stereo.divergence,
            convergence=request.stereo.convergence,
            encoding=encoding,
            depth_model=depth_model,
            window=request.window,
            # A window carries its own pre-roll.
            pre_roll_frames=0 if request.window else request.stereo.pre_roll_frames or 0,
        )
        try:
            result = convert(
                engine,
                conversion,
                device=self.config.engine_options.device,
                show_progress=self.config.show_progress,
            )
        except NoFramesLeft as exc:
            raise RequestError("stereo.preRollFrames", str(exc)) from None
        return InvocationResult(
            output_uri=request.output_uri,
            frames=result.frames,
            seconds=result.wall_seconds,
            video_seconds=result.video_seconds,
            engine=engine.name,
            format=stereo_format.value,
            depth_model=depth_model,
        )


def error_status(exc: BaseException) -> tuple[HTTPStatus, int]:
    """The HTTP status and the CLI's exit code for a failed invocation."""
    if isinstance(exc, RequestError):
        return HTTPStatus.BAD_REQUEST, exitcodes.BAD_INPUT
    if isinstance(exc, InputNotFoundError):
        return HTTPStatus.NOT_FOUND, exitcodes.BAD_INPUT
    if isinstance(exc, BadInputError):
        return HTTPStatus.UNPROCESSABLE_ENTITY, exitcodes.BAD_INPUT
    if isinstance(exc, TransientError | OSError):
        return HTTPStatus.SERVICE_UNAVAILABLE, exitcodes.TEMPFAIL
    return HTTPStatus.INTERNAL_SERVER_ERROR, exitcodes.SOFTWARE


class _Handler(BaseHTTPRequestHandler):
    server_version = "stereo-infer"
    protocol_version = "HTTP/1.1"
    service: InferenceService  # set on the subclass make_server builds

    def do_GET(self) -> None:
        if self.path.split("?", 1)[0] != "/ping":
            self._send(HTTPStatus.NOT_FOUND, {"error": f"no such path: {self.path}"})
            return
        state = self.service.state
        if state == "ready":
            self._send(HTTPStatus.OK, {"status": "ready", "engine": self.service.config.engine})
        elif state == "loading":
            self._send(HTTPStatus.SERVICE_UNAVAILABLE, {"status": "loading"})
        else:
            body = {"status": "failed", "error": self.service.error}
            self._send(HTTPStatus.INTERNAL_SERVER_ERROR, body)

    def do_POST(self) -> None:
        if self.path.split("?", 1)[0] != "/invocations":
            self._drain()
            self._send(HTTPStatus.NOT_FOUND, {"error": f"no such path: {self.path}"})
            return
        try:
            request = self._read_request()
            result = self.service.invoke(request)
        except Exception as exc:
            status, code = error_status(exc)
            body: dict[str, Any] = {"error": str(exc), "exitCode": code}
            if isinstance(exc, RequestError):
                body["field"] = exc.field
            if status is HTTPStatus.INTERNAL_SERVER_ERROR:
                traceback.print_exc()
            self._send(status, body)
            return
        self._send(HTTPStatus.OK, result.to_json())

    def _drain(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if 0 < length <= MAX_BODY_BYTES:
            self.rfile.read(length)
        elif length:
            self.close_connection = True

    def _read_request(self) -> InvocationRequest:
        length_header = self.headers.get("Content-Length")
        if length_header is None:
            self.close_connection = True
            raise RequestError("body", "Content-Length is required")
        try:
            length = int(length_header)
        except ValueError:
            self.close_connection = True
            raise RequestError("Content-Length", f"not a number: {length_header!r}") from None
        if length > MAX_BODY_BYTES:
            self.close_connection = True
            raise RequestError("body", f"larger than {MAX_BODY_BYTES} bytes")
        document = parse_json(self.rfile.read(length))
        location = input_location(document)
        if location is not None:
            document = self._fetch_document(location)
        return build_request(document, self.headers.get(CUSTOM_ATTRIBUTES_HEADER))

    @staticmethod
    def _fetch_document(uri: str) -> dict[str, Any]:
        with tempfile.TemporaryDirectory(prefix="stereo-request-") as tmp:
            try:
                path = fetch_input(uri, Path(tmp))
            except BadInputError as exc:
                raise RequestError("InputLocation", str(exc)) from None
            return parse_json(path.read_bytes(), where="InputLocation")

    def _send(self, status: HTTPStatus, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        print(f"stereo-infer serve: {self.address_string()} {format % args}", file=sys.stderr)


class InferenceServer(ThreadingHTTPServer):
    # Idle keep-alive connections must not hold the process up at exit;
    # in-flight conversions are waited for by InferenceService.drain.
    daemon_threads = True


def make_server(
    config: ServerConfig, service: InferenceService | None = None
) -> tuple[InferenceServer, InferenceService]:
    """A bound (not yet serving) server; the service loads in a background thread."""
    service = service or InferenceService(config)
    handler = type("Handler", (_Handler,), {"service": service})
    httpd = InferenceServer((config.host, config.port), handler)
    threading.Thread(target=service.load, name="engine-load", daemon=True).start()
    return httpd, service


# How long a stopping server waits for conversions in flight.
DRAIN_TIMEOUT_S = 600.0


def serve(config: ServerConfig) -> None:
    """Serve until SIGTERM or SIGINT; in-flight conversions finish first."""
    httpd, service = make_server(config)
    host, port = httpd.server_address[:2]
    print(f"stereo-infer serve: listening on {host!r}:{port}", file=sys.stderr)

    def stop(signum: int, _frame: FrameType | None) -> None:
        # shutdown() waits for serve_forever to return: not from its own thread.
        threading.Thread(target=httpd.shutdown, daemon=True).start()

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        httpd.serve_forever()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        httpd.server_close()
        if not service.drain(DRAIN_TIMEOUT_S):
            print("stereo-infer serve: conversions still running at exit", file=sys.stderr)
