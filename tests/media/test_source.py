"""open_source against a real S3 server (moto): ffmpeg reads a source in place, with Range
requests, and only the part it needs crosses the wire."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

import stereo_infer.io
import stereo_infer.source as source_module
from stereo_infer.conversion import ConversionRequest, convert
from stereo_infer.encoding import VideoEncoding
from stereo_infer.engines import EngineOptions, get_engine
from stereo_infer.engines.formats import StereoFormat
from stereo_infer.errors import InputNotFoundError
from stereo_infer.io import STORAGE_CONFIG_ENV, local_path
from stereo_infer.planner import plan_source
from stereo_infer.source import FFMPEG_HTTP_INPUT_ARGS, open_source
from stereo_infer.targets import LocalTargets
from stereo_storage import AccessDenied, ObjectStore, StorageUnavailable
from stereo_storage.base import CHUNK
from tests.media.pipeline import top_level_boxes
from tests.servers import MotoServer

BUCKET = "sources"
SECONDS, RATE = 60, 30
MOVIE_URI = f"s3://{BUCKET}/films/the movie.mp4"
# What a seek near the end may cost, as a share of the file.
SEEK_BUDGET = 0.35


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoServer]:
    with MotoServer() as server:
        server.client("s3").create_bucket(Bucket=BUCKET)
        yield server


@pytest.fixture(scope="module")
def movie(tmp_path_factory: pytest.TempPathFactory, moto: MotoServer) -> Path:
    """A minute of 320x180 H.264 at a steady 4 Mbit/s, plus AAC, keyframes every 2 s and
    the index (moov) at the end, as a camera or an editor writes it; stored in moto."""
    if shutil.which("ffmpeg") is None or shutil.which("ffprobe") is None:
        pytest.fail("ffmpeg and ffprobe must be on PATH", pytrace=False)
    path = tmp_path_factory.mktemp("source") / "one-minute.mp4"
    lavfi = [
        *("-f", "lavfi", "-i", f"testsrc2=size=320x180:rate={RATE}:duration={SECONDS}"),
        *("-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={SECONDS}"),
    ]
    x264 = ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"]
    gop = ["-g", str(2 * RATE), "-keyint_min", str(2 * RATE), "-sc_threshold", "0"]
    cbr = ["-b:v", "4M", "-minrate", "4M", "-maxrate", "4M", "-bufsize", "1M"]
    subprocess.run(
        [
            *("ffmpeg", "-nostdin", "-loglevel", "error", "-y", *lavfi, *x264, *gop, *cbr),
            *("-x264-params", "nal-hrd=cbr", "-c:a", "aac", str(path)),
        ],
        check=True,
    )
    assert top_level_boxes(path)[-2:] == ["mdat", "moov"]  # no faststart
    key = MOVIE_URI.split("/", 3)[3]
    moto.client("s3").upload_file(str(path), BUCKET, key)
    return path


def use_store(monkeypatch: pytest.MonkeyPatch, moto: MotoServer, endpoint: str) -> None:
    """Configure the store as the Helm chart does for a Job: STEREO_STORAGE_CONFIG."""
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", moto.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", moto.secret_key)
    config = {"endpoint_url": endpoint, "region": moto.region, "path_style": True}
    monkeypatch.setenv(STORAGE_CONFIG_ENV, json.dumps(config))


@pytest.fixture
def s3(moto: MotoServer, monkeypatch: pytest.MonkeyPatch) -> MotoServer:
    use_store(monkeypatch, moto, moto.endpoint_url)
    return moto


class CountingProxy:
    """A TCP relay on 127.0.0.1 that counts the bytes its upstream sends back."""

    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        self._upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self.received = 0
        self.connections = 0
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # closed
            upstream = socket.create_connection(self._upstream)
            with self._lock:
                self.connections += 1
            threading.Thread(target=self._pump, args=(client, upstream, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, True), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, count: bool) -> None:
        try:
            while data := src.recv(65536):
                if count:
                    with self._lock:
                        self.received += len(data)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            # Either side hanging up ends both directions.
            for sock in (src, dst):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
            src.close()

    def close(self) -> None:
        self._listener.close()


def ffprobe_json(*args: str) -> dict[str, object]:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-of", "json", *args], check=True, capture_output=True
    )
    parsed: dict[str, object] = json.loads(out.stdout)
    return parsed


def seek_hashes(url: str, *input_args: str) -> list[str]:
    """framemd5 of 10 frames decoded after an input seek to 50 s."""
    return frame_hashes(url, *input_args, "-ss", "50", frames=10)


def frame_hashes(url: str, *input_args: str, frames: int | None = None) -> list[str]:
    limit = ["-frames:v", str(frames)] if frames is not None else []
    out = subprocess.run(
        [
            *("ffmpeg", "-nostdin", "-loglevel", "error", *input_args, "-i", url),
            *("-map", "0:v:0", *limit, "-f", "framemd5", "-"),
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return [line.rsplit(",", 1)[1].strip() for line in out.splitlines() if line[:1] != "#"]


def test_ffprobe_reads_the_object_over_http(s3: MotoServer, movie: Path) -> None:
    size = movie.stat().st_size
    with open_source(MOVIE_URI) as source:
        assert source.url.startswith("http://127.0.0.1:")
        # The name ends the URL (escaped), for formats ffmpeg knows by extension.
        assert source.url.endswith("/source/the%20movie.mp4")
        assert source.size == size
        assert source.bytes_read() == 0
        info = ffprobe_json(
            "-count_packets", "-show_entries", "stream=codec_type,nb_frames,nb_read_packets",
            source.url,
        )  # fmt: skip
        # Counting packets reads every one of them, through the server.
        assert source.bytes_read() > 0.9 * size
    streams = info["streams"]
    assert isinstance(streams, list)
    video = next(s for s in streams if s["codec_type"] == "video")
    assert int(video["nb_frames"]) == int(video["nb_read_packets"]) == SECONDS * RATE


@pytest.mark.parametrize("input_args", [[], FFMPEG_HTTP_INPUT_ARGS], ids=["plain", "with-args"])
def test_a_seek_reads_only_what_it_needs(
    s3: MotoServer, movie: Path, input_args: list[str]
) -> None:
    size = movie.stat().st_size
    with open_source(MOVIE_URI) as source:
        hashes = seek_hashes(source.url, *input_args)
        served = source.bytes_read()
    assert hashes == seek_hashes(str(movie))
    assert len(hashes) == 10
    # The index at the end, the first packets, then 50 s in: not the file.
    assert 0 < served < SEEK_BUDGET * size, f"{served} of {size} bytes"


def test_the_store_sends_only_what_a_seek_needs(
    moto: MotoServer, movie: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    proxy = CountingProxy(moto.endpoint_url)
    use_store(monkeypatch, moto, proxy.endpoint_url)
    size = movie.stat().st_size
    try:
        with open_source(MOVIE_URI) as source:
            hashes = seek_hashes(source.url, *FFMPEG_HTTP_INPUT_ARGS)
    finally:
        proxy.close()
    assert hashes == seek_hashes(str(movie))
    assert proxy.connections > 0  # the store was reached through the proxy
    assert 0 < proxy.received < SEEK_BUDGET * size, f"{proxy.received} of {size} bytes"


def test_a_missing_object(s3: MotoServer) -> None:
    uri = f"s3://{BUCKET}/films/no-such-movie.mp4"
    with pytest.raises(InputNotFoundError, match=uri), open_source(uri):
        pass


def test_local_sources_are_opened_directly(tmp_path: Path) -> None:
    video = tmp_path / "a b.mp4"
    video.write_bytes(b"x" * 100)
    for uri in (video.as_uri(), str(video)):
        with open_source(uri) as source:
            assert source.url == str(video)
            assert (source.size, source.bytes_read()) == (100, 0)
    with pytest.raises(InputNotFoundError), open_source((tmp_path / "nope.mp4").as_uri()):
        pass


@pytest.fixture
def small_object(s3: MotoServer) -> tuple[str, bytes]:
    data = os.urandom(3 * CHUNK + 1000)
    s3.client("s3").put_object(Bucket=BUCKET, Key="small/clip.mkv", Body=data)
    return f"s3://{BUCKET}/small/clip.mkv", data


def request(
    url: str, method: str = "GET", headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10)
    try:
        conn.request(method, parts.path, headers=headers or {})
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def test_range_requests(small_object: tuple[str, bytes]) -> None:
    uri, data = small_object
    size = len(data)
    with open_source(uri) as source:
        url = source.url

        status, headers, body = request(url, "HEAD")
        assert (status, body) == (200, b"")
        assert headers["Content-Length"] == str(size)
        assert headers["Accept-Ranges"] == "bytes"

        status, headers, body = request(url)
        assert (status, body) == (200, data)

        def ranged(spec: str) -> tuple[int, str | None, bytes]:
            status, headers, body = request(url, headers={"Range": spec})
            assert headers["Accept-Ranges"] == "bytes"
            assert headers["Content-Length"] == str(len(body))
            return status, headers.get("Content-Range"), body

        assert ranged("bytes=10-19") == (206, f"bytes 10-19/{size}", data[10:20])
        assert ranged(f"bytes={size - 10}-") == (
            206,
            f"bytes {size - 10}-{size - 1}/{size}",
            data[-10:],
        )
        assert ranged("bytes=-5") == (206, f"bytes {size - 5}-{size - 1}/{size}", data[-5:])
        assert ranged("bytes=-99999999") == (206, f"bytes 0-{size - 1}/{size}", data)
        assert ranged(f"bytes=5-{size + 50}") == (206, f"bytes 5-{size - 1}/{size}", data[5:])
        assert ranged(f"bytes={size}-") == (416, f"bytes */{size}", b"")
        assert ranged("bytes=-0") == (416, f"bytes */{size}", b"")
        # Not understood, hence ignored: the whole object.
        assert ranged("bytes=9-3") == (200, None, data)
        assert ranged("bytes=0-1,5-6") == (200, None, data)
        assert ranged("lines=1-2") == (200, None, data)

        assert request(url.rsplit("/", 1)[0] + "/other.mkv")[0] == 404
        # What went out: the full GET, 10 + 10 + 5 bytes, size + (size - 5), three wholes.
        assert source.bytes_read() == size + 25 + size + (size - 5) + 3 * size


def test_a_reader_hanging_up_is_routine(
    small_object: tuple[str, bytes], capfd: pytest.CaptureFixture[str]
) -> None:
    uri, data = small_object
    with open_source(uri) as source:
        parts = urlsplit(source.url)
        for _ in range(3):
            with socket.create_connection((parts.hostname or "", parts.port or 80)) as sock:
                sock.sendall(f"GET {parts.path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
                sock.recv(1000)
        time.sleep(0.3)  # for the server to meet the closed sockets
        status, _, body = request(source.url)
        assert (status, body) == (200, data)
    assert "Traceback" not in capfd.readouterr().err


def flaky(
    monkeypatch: pytest.MonkeyPatch,
    failures: list[tuple[int, Exception]],
    when: Callable[[int, int], bool] = lambda start, end: True,
) -> list[tuple[int, int]]:
    """Make the store's reads for which ``when(start, end)`` holds fail: each (n, error)
    in turn raises after n chunks.

    Returns the (start, end) of every read the server makes.
    """
    reads: list[tuple[int, int]] = []
    real_store_for = stereo_infer.io.store_for

    def store_for(uri: str) -> ObjectStore:
        store = real_store_for(uri)
        read_range = store.read_range

        def failing(uri: str, start: int, end: int | None = None) -> Iterator[bytes]:
            assert end is not None  # the server always bounds its reads
            reads.append((start, end))
            chunks = read_range(uri, start, end)
            if failures and when(start, end):
                after, error = failures.pop(0)
                for _ in range(after):
                    yield next(chunks)
                raise error
            yield from chunks

        store.read_range = failing  # type: ignore[method-assign]
        return store

    monkeypatch.setattr(source_module, "store_for", store_for)
    monkeypatch.setattr(stereo_infer.io, "RETRY_DELAY", 0.01)
    return reads


def test_a_failed_read_resumes_where_it_stopped(
    small_object: tuple[str, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    uri, data = small_object
    # More failures in a row than READ_ATTEMPTS, but each after some progress.
    reads = flaky(monkeypatch, [(1, StorageUnavailable("reset", uri=uri))] * 3)
    with open_source(uri) as source:
        status, _, body = request(source.url, headers={"Range": "bytes=100-"})
        assert (status, body) == (206, data[100:])
        assert source.bytes_read() == len(data) - 100
    # Each retry starts where the failed read stopped: nothing is sent twice.
    assert [start for start, _ in reads[:4]] == [100 + n * CHUNK for n in range(4)]


def test_a_store_that_keeps_failing(
    small_object: tuple[str, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    uri, data = small_object
    attempts = source_module.READ_ATTEMPTS
    # Failing before the first byte, every time: a 502 that ffmpeg reports.
    reads = flaky(monkeypatch, [(0, StorageUnavailable("reset", uri=uri))] * attempts)
    with open_source(uri) as source:
        status, _, body = request(source.url)
        assert status == 502 and b"reset" in body
        assert len(reads) == attempts
        # The server itself is fine: the next request is served.
        assert request(source.url)[2] == data

    # A permanent error is not retried; mid-response, it cuts the response short
    # (ffmpeg sees a broken transfer, never a shorter file).
    reads = flaky(monkeypatch, [(1, AccessDenied("denied", uri=uri))])
    with open_source(uri) as source, pytest.raises(http.client.IncompleteRead):
        request(source.url)
    assert len(reads) == 1


def test_ffmpeg_resumes_a_response_cut_short(
    s3: MotoServer, movie: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A store error the server does not retry, in the middle of the long sequential
    # read: the response ends early. Without -reconnect, ffmpeg 5 takes that as the
    # end of the file and exits 0 with the frames it has.
    cut = (1, AccessDenied("denied", uri=MOVIE_URI))
    reads = flaky(monkeypatch, [cut], when=lambda start, end: end - start > 2 * CHUNK)
    with open_source(MOVIE_URI) as source:
        hashes = frame_hashes(source.url, *FFMPEG_HTTP_INPUT_ARGS)
    assert len(hashes) == SECONDS * RATE
    assert hashes == frame_hashes(str(movie))
    cut_at = next(start for start, end in reads if end - start > 2 * CHUNK) + CHUNK
    assert any(start == cut_at for start, _ in reads)  # asked again from the cut


def test_each_segment_job_reads_only_its_share_of_the_source(
    moto: MotoServer, movie: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Plan the S3 source in 10-s segments, then convert each window as its inference Job
    would: moto, counted through a proxy, sends each Job about its own sixth of the file,
    and the frames are the source's."""
    # A VideoJob's source URI has no spaces: the same movie under a plain key.
    uri = f"s3://{BUCKET}/films/movie.mp4"
    moto.client("s3").upload_file(str(movie), BUCKET, uri.split("/", 3)[3])
    proxy = CountingProxy(moto.endpoint_url)
    use_store(monkeypatch, moto, proxy.endpoint_url)
    size = movie.stat().st_size
    engine = get_engine("copy", EngineOptions())
    sent: list[int] = []
    try:
        plan = plan_source(uri, LocalTargets.under(str(tmp_path)), 10.0, pre_roll=4)
        planned = proxy.received
        for seg in plan.segments:
            before = proxy.received
            request = ConversionRequest(
                seg.input_uri,
                seg.output_uri,
                StereoFormat.HALF_SBS,
                2.0,
                0.5,
                VideoEncoding(),
                window=seg.window,
            )
            convert(engine, request, device="cpu", show_progress=False)
            sent.append(proxy.received - before)
    finally:
        proxy.close()
    assert len(plan.segments) == 6
    # Planning scans the packet index once: about the file, never a copy of it.
    assert planned < 1.2 * size, f"planning read {planned} of {size} bytes"
    share = size / len(plan.segments)
    # Its own sixth, plus what every Job reads whatever the film's length: the header probe,
    # the index at the end, and the read-ahead of the store windows (at most 4 MiB each).
    overhead = 8 * 1024 * 1024
    assert all(0 < n < share + overhead for n in sent), (sent, share)
    decoded = [h for seg in plan.segments for h in frame_hashes(local_path(seg.output_uri))]
    assert decoded == frame_hashes(str(movie))
