"""Real-world media through the full path on the local cluster: a film with every kind of
track, in 10-bit HDR10, comes out with all of it (as VR180, tagged for headsets); a rotated
10-bit HLG phone clip comes out upright and still HLG."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from stereo_infer.probe import probe
from tests.media import films
from tests.media.test_stereo_tags import video_side_data
from tests.operator.harness import (
    Harness,
    cpu_inference_template,
    file_path,
    frame_count,
    make_video,
)

HLG = ("-color_primaries", "bt2020", "-colorspace", "bt2020nc", "-color_trc", "arib-std-b67")

pytest_plugins = ["tests.operator.harness"]
pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module")
def hdr_film(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("films")
    return films.make_film(folder, "hdr-film.mkv", video=films.HDR10_HEVC)


def test_an_hdr10_film_keeps_every_track_chapter_and_its_hdr(
    harness: Harness, hdr_film: Path
) -> None:
    harness.start_operator("--standalone")
    harness.create_videojob(
        "rip", hdr_film, format="vr180", encoding={"container": "mkv"}, stereo={"preRollFrames": 2}
    )
    vj = harness.wait_phase("rip", "Succeeded", "Failed", timeout=180)
    assert vj["status"]["phase"] == "Succeeded", vj["status"]
    output = file_path(vj["status"]["outputUri"])
    assert frame_count(output) == frame_count(hdr_film) == 60

    out = films.streams(output)
    tracks = [*films.AUDIO, *films.TEXT_SUBTITLES, films.PGS]
    assert [films.described(s) for s in out[1:6]] == [films.expected(t) for t in tracks]
    assert out[6]["codec_type"] == "attachment"
    assert films.chapters(output) == films.chapters(hdr_film)
    assert films.format_tags(output)["title"] == films.FILM_TITLE

    # The copy engine's lossless H.264 keeps the 10 bits, the colour tags and, as SEI,
    # the mastering display (137) and light levels (144).
    video = probe(output).video
    assert (video.pix_fmt, video.color_primaries, video.color_transfer) == (
        "yuv420p10le",
        "bt2020",
        "smpte2084",
    )
    assert {137, 144} <= films.sei_payload_types(output)
    kinds = [side["side_data_type"] for side in video_side_data(output)]
    assert kinds == ["Stereo 3D", "Spherical Mapping"]


def test_a_rotated_hlg_phone_clip_comes_out_upright_and_hlg(
    harness: Harness, tmp_path: Path
) -> None:
    upright = tmp_path / "upright.mp4"
    subprocess.run(
        [
            *("ffmpeg", "-nostdin", "-loglevel", "error", "-f", "lavfi"),
            *("-i", "testsrc2=size=160x90:rate=30:duration=2", "-c:v", "libx265"),
            *("-preset", "ultrafast", "-pix_fmt", "yuv420p10le", "-x265-params", "log-level=error"),
            *(
                "-color_primaries",
                "bt2020",
                "-colorspace",
                "bt2020nc",
                "-color_trc",
                "arib-std-b67",
            ),
            str(upright),
        ],
        check=True,
    )
    # A phone's portrait clip: landscape pixels and a rotation for the player.
    phone = tmp_path / "phone.mp4"
    subprocess.run(
        [
            *("ffmpeg", "-nostdin", "-loglevel", "error", "-i", str(upright)),
            *("-c", "copy", "-metadata:s:v:0", "rotate=90", str(phone)),
        ],
        check=True,
    )
    harness.start_operator("--standalone")
    harness.create_videojob("phone", phone, format="half-sbs", encoding={"codec": "hevc"})
    vj = harness.wait_phase("phone", "Succeeded", "Failed", timeout=180)
    assert vj["status"]["phase"] == "Succeeded", vj["status"]
    video = probe(file_path(vj["status"]["outputUri"])).video
    assert (video.width, video.height, video.rotation) == (90, 160, 0)
    assert (video.pix_fmt, video.color_transfer) == ("yuv420p10le", "arib-std-b67")
    assert video.frame_count == 60


def test_a_track_the_output_cannot_hold_fails_before_any_segment(
    harness: Harness, hdr_film: Path
) -> None:
    harness.start_operator("--standalone")
    harness.create_videojob("pgs-in-mp4", hdr_film, encoding={"container": "mp4"})
    vj = harness.wait_phase("pgs-in-mp4", "Failed", "Succeeded", timeout=120)
    status = vj["status"]
    assert status["phase"] == "Failed", status
    assert "hdmv_pgs_subtitle" in status["message"] and "mkv" in status["message"], status
    assert harness.segments("pgs-in-mp4") == []


def test_a_builtin_videojob_reports_its_seam_score(harness: Harness, tmp_path: Path) -> None:
    source = make_video(tmp_path / "film.mp4", 2, audio=False)  # two 1 s segments
    # The job backend on CPU nodes: the builtin engine with its weight-free depth model.
    harness.start_operator("--standalone", inference=cpu_inference_template())
    harness.create_videojob(
        "seams",
        source,
        backend={"type": "job", "engine": "builtin"},
        stereo={"depthModel": "Prior"},
    )
    vj = harness.wait_phase("seams", "Succeeded", "Failed", timeout=240)
    status = vj["status"]
    assert status["phase"] == "Succeeded", status["message"]
    seams = status["seams"]
    assert (seams["seams"], seams["worstSegment"]) == (1, 1)
    assert seams["score"] == seams["medianScore"] > 0
