"""Every track of a film survives the conversion: audio, subtitles, chapters and metadata,
with their languages, titles and dispositions, in mkv and in mp4."""

import subprocess
from pathlib import Path

import pytest

from stereo_infer.assemble import Container, assemble
from stereo_infer.errors import BadInputError
from stereo_infer.planner import plan_source
from stereo_infer.targets import LocalTargets
from tests.media import films
from tests.media.pipeline import Roundtrip, convert_segments, payload_hashes, plan_local

PGS_REFUSED = (
    r'subtitle track 5 \(hdmv_pgs_subtitle, ger, "Deutsch \(PGS\)"\) cannot go into an mp4'
    r" output and cannot be converted; an mkv output holds it"
)


@pytest.fixture(scope="module")
def film(media_dir: Path) -> Path:
    return films.make_film(media_dir, "film.mkv")


@pytest.fixture(scope="module")
def film_without_pgs(media_dir: Path) -> Path:
    return films.make_film(media_dir, "film-text-subtitles.mkv", pgs=False)


def test_mkv_keeps_every_track_chapter_and_tag(film: Path, roundtrip: Roundtrip) -> None:
    plan, result = roundtrip(film, 0.7, pre_roll=2, container=Container.MKV)
    tracks = [*films.AUDIO, *films.TEXT_SUBTITLES, films.PGS]
    assert (result.audio_tracks, result.subtitle_tracks, result.tracks) == (2, 3, 6)
    out = films.streams(result.output)
    assert [films.described(s) for s in out[1:6]] == [films.expected(t) for t in tracks]
    assert out[6]["codec_type"] == "attachment"
    for index in range(1, 6):
        # Stream copies: every audio and subtitle packet as it was.
        assert payload_hashes(result.output, index) == payload_hashes(film, index)
    assert films.chapters(result.output) == films.chapters(film)
    assert films.format_tags(result.output)["title"] == films.FILM_TITLE
    assert plan.frame_count == 60 == result.frame_count


def test_mp4_converts_text_subtitles_and_keeps_the_rest(
    film_without_pgs: Path, roundtrip: Roundtrip
) -> None:
    _, result = roundtrip(film_without_pgs, 1.0, container=Container.MP4)
    out = [s for s in films.streams(result.output) if s["codec_type"] != "data"]
    assert len(out) == 5, "the font attachment is left out"
    expected = [
        *(films.expected(t) for t in films.AUDIO),
        *(films.expected(t, "mov_text") for t in films.TEXT_SUBTITLES),
    ]
    # mp4 keeps a track's title as its handler name.
    described = [
        (*films.described(s)[:3], s["tags"]["handler_name"], *films.described(s)[4:])
        for s in out[1:]
    ]
    assert described == expected
    for index in (1, 2):
        assert payload_hashes(result.output, index) == payload_hashes(film_without_pgs, index)
    assert films.chapters(result.output) == films.chapters(film_without_pgs)
    assert films.format_tags(result.output)["title"] == films.FILM_TITLE


def test_bitmap_subtitles_that_mp4_cannot_hold_fail_the_plan(film: Path, tmp_path: Path) -> None:
    targets = LocalTargets.under(str(tmp_path / "plan"))
    with pytest.raises(BadInputError, match=PGS_REFUSED):
        plan_source(str(film), targets, 1.0, container=Container.MP4)
    assert not list((tmp_path / "plan").glob("*")), "nothing planned"
    # The join applies the same rule (a plan made without a container).
    plan = plan_local(film, tmp_path / "segments", 1.0)
    outputs = convert_segments(plan)
    with pytest.raises(BadInputError, match=PGS_REFUSED):
        assemble(plan, outputs, tmp_path / "out.mp4", source=film, show_progress=False)
    assert not (tmp_path / "out.mp4").exists()


def decoded_audio_md5(path: Path, stream: int) -> str:
    out = subprocess.run(
        [
            *("ffmpeg", "-nostdin", "-loglevel", "error", "-i", str(path), "-map", f"0:{stream}"),
            *("-c:a", "pcm_s32le", "-f", "md5", "-"),
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return out.strip()


def test_audio_mp4_cannot_hold_is_converted(media_dir: Path, roundtrip: Roundtrip) -> None:
    source = media_dir / "pcm-vorbis.mkv"
    subprocess.run(
        [
            *("ffmpeg", "-nostdin", "-loglevel", "error", "-y"),
            *("-f", "lavfi", "-i", "testsrc2=size=160x90:rate=30:duration=1"),
            *("-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=1"),
            *("-map", "0", "-map", "1", "-map", "1", "-c:v", "libx264", "-preset", "ultrafast"),
            *("-c:a:0", "pcm_s24le", "-c:a:1", "libvorbis", str(source)),
        ],
        check=True,
    )
    _, result = roundtrip(source, 0.5, container=Container.MP4)
    out = films.streams(result.output)
    assert [s["codec_name"] for s in out] == ["h264", "alac", "aac"]
    # PCM goes to ALAC without loss; Vorbis, which mp4 players do not play, to AAC.
    assert decoded_audio_md5(result.output, 1) == decoded_audio_md5(source, 1)
    # 96 kb/s per channel: the tone is mono.
    assert 90_000 < int(out[2]["bit_rate"]) < 110_000
