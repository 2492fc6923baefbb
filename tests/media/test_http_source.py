"""http(s):// sources against a real web server (tests.servers.web) and real ffmpeg: planned,
decoded window by window and assembled exactly as from file://, with ranged GETs pinned to
the version first read, retries of what may pass, one download where ranges are not served,
and clear errors for a missing, forbidden or replaced source."""

from __future__ import annotations

import json
import logging
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

import stereo_infer.io
from stereo_cluster.pki import CertificateAuthority
from stereo_infer import exitcodes, httpsource
from stereo_infer.cli import main
from stereo_infer.errors import (
    BadInputError,
    InputNotFoundError,
    SourceChangedError,
    TransientError,
)
from stereo_infer.io import READ_ATTEMPTS, fetch_input
from stereo_infer.planner import plan_source
from stereo_infer.probe import probe
from stereo_infer.source import FFMPEG_HTTP_INPUT_ARGS, open_source
from stereo_infer.targets import LocalTargets
from stereo_types.plan import SplitPlan
from tests.media.pipeline import MakeVideo, convert_segment, convert_segments, frame_hashes
from tests.servers.web import WebServer

SEGMENT_SECONDS = 1.0


@pytest.fixture(scope="module")
def film(make_video: MakeVideo) -> Path:
    """3 s with audio, a keyframe every half second and B-frames."""
    return make_video("web-film.mp4", seconds=3, extra=("-g", "15", "-bf", "2"))


@pytest.fixture(scope="module")
def other(make_video: MakeVideo) -> Path:
    """What replaces the film: another size, another picture."""
    return make_video("web-other.mp4", seconds=2, size="128x72")


@pytest.fixture
def web() -> Iterator[WebServer]:
    with WebServer() as server:
        yield server


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stereo_infer.io, "RETRY_DELAY", 0.01)


def plan_at(uri: str, folder: Path) -> SplitPlan:
    return plan_source(uri, LocalTargets.under(str(folder)), SEGMENT_SECONDS)


def url_hashes(url: str) -> list[str]:
    """framemd5 of every video frame ffmpeg decodes from ``url``."""
    remote = FFMPEG_HTTP_INPUT_ARGS if url.startswith("http") else []
    out = subprocess.run(
        [
            *("ffmpeg", "-nostdin", "-loglevel", "error", *remote, "-i", url),
            *("-map", "0:v:0", "-f", "framemd5", "-"),
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return [line.split(",")[5].strip() for line in out.splitlines() if line[:1] != "#"]


def streams(path: Path) -> list[str]:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "stream=codec_type", "-of", "json", str(path)],
        check=True,
        capture_output=True,
    ).stdout
    return [s["codec_type"] for s in json.loads(out)["streams"]]


def test_plan_windows_and_assembly_over_http_match_the_local_file(
    web: WebServer, film: Path, tmp_path: Path
) -> None:
    url = web.put("films/web.mp4", film.read_bytes())
    local = plan_at(str(film), tmp_path / "local")
    plan = plan_at(url, tmp_path / "web")

    # The plan names the source pinned to the version it read; every Job reads that.
    parts = urlsplit(plan.source)
    assert parts._replace(fragment="").geturl() == url
    served = web.files["films/web.mp4"]
    assert parse_qs(parts.fragment) == {
        "pin-size": [str(film.stat().st_size)],
        "pin-etag": [served.etag_value],
        "pin-modified": [web.last_modified("films/web.mp4")],
    }
    assert {s.input_uri for s in plan.segments} == {plan.source}
    assert plan.audio is not None and plan.audio.uri == plan.source
    assert len(plan.segments) == 3
    assert [s.window for s in plan.segments] == [s.window for s in local.segments]

    # Each window, decoded as its inference Job decodes it: the file's frames.
    outputs = convert_segments(plan)
    assert [h for path in outputs for h in frame_hashes(path)] == frame_hashes(film)

    # The assemble Job muxes the source's audio back in, read over http too.
    final = tmp_path / "final.mp4"
    plan_file = LocalTargets.under(str(tmp_path / "web")).plan
    assert main(["--no-progress", "assemble", "--plan", plan_file, "--output", str(final)]) == 0
    assert streams(final) == ["video", "audio"]
    assert len(frame_hashes(final)) == len(frame_hashes(film))

    # Every read was ranged, and pinned: the server never sent the whole file at once.
    gets = web.gets("films/web.mp4")
    assert gets and all(r.status == 206 for r in gets)
    assert all(r.headers["If-Match"] == served.etag_value for r in gets[1:])


def test_a_server_without_ranges_is_downloaded_once_per_job(
    web: WebServer, film: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    url = web.put("plain.mp4", film.read_bytes(), ranges=False)
    with caplog.at_level(logging.WARNING, logger="stereo_infer.source"):
        plan = plan_at(url, tmp_path)
    assert f"{url} does not serve byte ranges: downloading it once" in caplog.text
    # The first-byte probe (answered with the whole file, hung up on), then one download.
    assert [r.status for r in web.gets("plain.mp4")] == [200, 200]
    assert plan.source.startswith(f"{url}#pin-size={film.stat().st_size}&")

    seg = plan.segments[1]
    assert convert_segment(seg).frames == seg.frame_count
    start = seg.start_frame
    want = frame_hashes(film)[start : start + seg.frame_count]
    assert frame_hashes(Path(seg.output_uri.removeprefix("file://"))) == want
    # The inference Job's own download is pinned to the planned version.
    assert len(web.gets("plain.mp4")) == 4
    assert web.gets("plain.mp4")[-1].headers["If-Match"] == web.files["plain.mp4"].etag_value


def test_transient_failures_are_retried(web: WebServer, film: Path, tmp_path: Path) -> None:
    url = web.put("flaky.mp4", film.read_bytes())
    # The first-byte probe fails three times; then ranged reads (under ffprobe and ffmpeg)
    # are cut short, refused and reset, and resumed.
    web.fail("flaky.mp4", "503", "reset", "429", "short", "503", "reset", "short")
    plan = plan_at(url, tmp_path / "web")
    assert web.files["flaky.mp4"].faults == []
    assert [r.status for r in web.gets("flaky.mp4")][:4] == [503, None, 429, 206]
    local = plan_at(str(film), tmp_path / "local")
    assert [s.window for s in plan.segments] == [s.window for s in local.segments]

    web.fail("flaky.mp4", "short", "reset", "503", "short")
    with open_source(plan.source) as source:
        assert url_hashes(source.url) == frame_hashes(film)
    assert web.files["flaky.mp4"].faults == []


def test_a_server_that_keeps_failing(web: WebServer, film: Path) -> None:
    url = web.put("down.mp4", film.read_bytes(), status=503)
    expected = re.escape(f"cannot read {url} (HTTP 503 Service Unavailable)")
    with pytest.raises(TransientError, match=expected), open_source(url):
        pass
    assert len(web.gets("down.mp4")) == READ_ATTEMPTS


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (404, InputNotFoundError),
        (410, InputNotFoundError),
        (403, BadInputError),
        (401, BadInputError),
        (400, BadInputError),
    ],
)
def test_a_missing_or_forbidden_source_is_bad_input(
    web: WebServer, film: Path, status: int, error: type[Exception]
) -> None:
    web.put("film.mp4", film.read_bytes(), status=status)
    url = web.url("film.mp4")
    signed = f"{url}?X-Amz-Signature=secret"
    with pytest.raises(error) as raised, open_source(signed):
        pass
    assert type(raised.value) is error
    message = str(raised.value)
    # Names the URL and the status, not the signature.
    assert f"{url}?... (HTTP {status} " in message
    assert "secret" not in message
    assert len(web.gets("film.mp4")) == 1  # not retried
    # As a Job reports it: exit code 3, which fails it without retries.
    assert main(["probe", "--input", signed]) == exitcodes.BAD_INPUT


SERVERS = {
    "etag": {},  # If-Match: 412
    "last-modified": {"etag": False},  # If-Unmodified-Since: 412
    "no-preconditions": {"preconditions": False},  # the answer's ETag differs
    "no-validators": {"etag": False, "last_modified": False},  # the size differs
    "no-ranges": {"ranges": False},  # the download's ETag differs
}


@pytest.mark.parametrize("server", SERVERS.values(), ids=SERVERS.keys())
def test_a_source_replaced_after_planning_fails_the_jobs(
    web: WebServer, film: Path, other: Path, tmp_path: Path, server: dict[str, bool]
) -> None:
    url = web.put("film.mp4", film.read_bytes(), **server)
    plan = plan_at(url, tmp_path)
    web.replace("film.mp4", other.read_bytes())
    assert film.stat().st_size != other.stat().st_size
    with pytest.raises(SourceChangedError, match=re.escape(f"{url} changed while")):
        convert_segment(plan.segments[0])
    # The inference Job's command line: exit code 3, which fails it without retries.
    window = plan.segments[0].window.to_wire()
    args = ["convert", "--input", plan.source, "--output", str(tmp_path / "x.mp4")]
    args += ["--format", "half-sbs", "--window", json.dumps(window)]
    assert main(["--no-progress", *args]) == exitcodes.BAD_INPUT


def test_a_source_replaced_while_a_job_reads_it(web: WebServer, film: Path, other: Path) -> None:
    url = web.put("film.mp4", film.read_bytes())
    with pytest.raises(SourceChangedError, match="changed while"), open_source(url) as source:
        web.replace("film.mp4", other.read_bytes())
        # ffprobe sees a 502 from the local server; open_source says why.
        probe(source.url)


def test_redirects_are_followed_and_the_pin_names_the_first_url(web: WebServer, film: Path) -> None:
    web.put("film.mp4", film.read_bytes())
    web.redirects["latest.mp4"] = web.url("film.mp4")
    with open_source(web.url("latest.mp4")) as source:
        assert url_hashes(source.url) == frame_hashes(film)
        assert source.uri.startswith(web.url("latest.mp4") + "#pin-size=")


def test_fetch_input_and_preview_read_http(web: WebServer, film: Path, tmp_path: Path) -> None:
    url = web.put("film.mp4", film.read_bytes())
    assert fetch_input(url, tmp_path / "in").read_bytes() == film.read_bytes()
    out = tmp_path / "preview.png"
    args = ["preview", url, "--at", "0.5", "--out", str(out), "--depth-model", "Prior"]
    assert main([*args, "--device", "cpu"]) == exitcodes.OK
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def fresh_tls() -> Iterator[None]:
    """TLS settings read anew (SSL_CERT_FILE), before and after the test."""
    httpsource._tls.cache_clear()
    yield
    httpsource._tls.cache_clear()


def test_https_with_a_private_ca(
    film: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_tls: None
) -> None:
    ca = CertificateAuthority.create(tmp_path / "pki")
    pair = ca.node_serving("web", "localhost")  # valid for 127.0.0.1
    with WebServer(tls=(pair.cert, pair.key)) as web:
        url = web.put("film.mp4", film.read_bytes())
        assert url.startswith("https://127.0.0.1:")
        # An untrusted certificate is permanent: refused at once, not retried.
        monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "no-such-ca.pem"))
        with pytest.raises(BadInputError, match="certificate"), open_source(url):
            pass
        monkeypatch.setenv("SSL_CERT_FILE", str(ca.cert))
        httpsource._tls.cache_clear()
        with open_source(url) as source:
            assert url_hashes(source.url) == frame_hashes(film)


def test_a_long_url_keeps_what_of_its_pin_fits_in_a_plan() -> None:
    pin = httpsource.Pin(1234, '"v1"', "Tue, 14 Nov 2023 22:14:20 GMT")
    url = "https://example.com/" + "a" * 1990
    assert httpsource.HttpObject(url, pin).uri == f"{url}#pin-size=1234&pin-etag=%22v1%22"
    pinned = httpsource.HttpObject.at(f"{url}#pin-size=1234&pin-etag=%22v1%22")
    assert pinned.pin == httpsource.Pin(1234, '"v1"')
