"""Storage layout and derived names: build and parse are exact inverses."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stereo_types.layout import (
    SegmentRef,
    StorageRoot,
    VideoJobRef,
    final_output_uri,
    join_uri,
    parse_segment_output,
    segment_output_uri,
    split_uri,
    videojob_prefix_uri,
)
from stereo_types.names import (
    MAX_ATTEMPT,
    MAX_LABEL_VALUE_LENGTH,
    MAX_SEGMENT_INDEX,
    MAX_VIDEOJOB_NAME_LENGTH,
    VIDEOJOB_NAME_MESSAGE,
    is_dns1123_subdomain,
    job_name,
    segment_name,
    validate_videojob_name,
)
from stereo_types.plan import plan_uri

labels = st.from_regex(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", fullmatch=True)
short_labels = st.from_regex(r"[a-z0-9]([-a-z0-9]{0,10}[a-z0-9])?", fullmatch=True)
videojob_names = (
    st.lists(short_labels, min_size=1, max_size=4)
    .map(".".join)
    .filter(lambda name: len(name) <= MAX_VIDEOJOB_NAME_LENGTH)
)
uids = st.uuids().map(str) | st.from_regex(
    r"[A-Za-z0-9]([-A-Za-z0-9]{0,20}[A-Za-z0-9])?", fullmatch=True
)
videojobs = st.builds(VideoJobRef, namespace=labels, name=videojob_names, uid=uids)
indexes = st.integers(min_value=0, max_value=MAX_SEGMENT_INDEX)
extensions = st.from_regex(r"[a-z0-9]{1,8}", fullmatch=True)
prefix_segments = st.from_regex(r"[A-Za-z0-9_~-][A-Za-z0-9._~-]{0,12}", fullmatch=True)

s3_buckets = st.from_regex(r"[a-z0-9][a-z0-9.-]{1,20}[a-z0-9]", fullmatch=True).filter(
    lambda bucket: ".." not in bucket
)
gcs_buckets = st.from_regex(r"[a-z0-9][a-z0-9_-]{1,20}[a-z0-9]", fullmatch=True)


@st.composite
def roots(draw: st.DrawFn) -> str:
    """Root URIs of all three schemes, with and without prefixes and trailing slashes."""
    scheme = draw(st.sampled_from(["s3", "gs", "file"]))
    bucket = "" if scheme == "file" else draw(s3_buckets if scheme == "s3" else gcs_buckets)
    prefix = "/".join(draw(st.lists(prefix_segments, max_size=3)))
    trailing = "/" if draw(st.booleans()) and (prefix or scheme == "file") else ""
    if scheme == "file":
        return f"file:///{prefix}{trailing}" if prefix else "file:///"
    return f"{scheme}://{bucket}/{prefix}{trailing}" if prefix else f"{scheme}://{bucket}{trailing}"


@settings(deadline=None)
@given(root=roots(), videojob=videojobs, index=indexes, ext=extensions)
def test_segment_output_round_trip(root: str, videojob: VideoJobRef, index: int, ext: str) -> None:
    uri = segment_output_uri(root, videojob, index, ext)
    assert parse_segment_output(uri, root) == SegmentRef(videojob, index, ext)
    assert uri.startswith(videojob_prefix_uri(root, videojob) + "/")


@settings(deadline=None)
@given(root=roots())
def test_root_canonical_form_round_trips(root: str) -> None:
    parsed = StorageRoot.parse(root)
    assert StorageRoot.parse(parsed.uri) == parsed
    assert not parsed.uri.endswith("/") or parsed.uri == "file:///"
    assert join_uri(*split_uri(parsed.uri)) == parsed.uri


@settings(deadline=None)
@given(root=roots(), videojob=videojobs, ext=extensions)
def test_job_level_files_are_not_segment_outputs(
    root: str, videojob: VideoJobRef, ext: str
) -> None:
    for uri in (plan_uri(root, videojob), final_output_uri(root, videojob, ext)):
        assert uri.startswith(videojob_prefix_uri(root, videojob) + "/")
        assert parse_segment_output(uri, root) is None


@settings(deadline=None)
@given(key=st.text(max_size=200), root=roots())
def test_any_key_parses_to_none_or_to_its_own_segment(key: str, root: str) -> None:
    parsed = StorageRoot.parse(root)
    uri = join_uri(parsed.scheme, parsed.bucket, key)
    ref = parse_segment_output(uri, root)
    if ref is not None:
        assert segment_output_uri(root, ref.videojob, ref.index, ref.ext) == uri


ROOT = "s3://media/stereo/work"
UID = "0b7c2f1e-8d0a-4e0e-9a51-2d3c4b5a6f70"
GOOD = f"{ROOT}/default/movie/{UID}/segments/00012/output.mp4"


def test_known_uri_parses() -> None:
    ref = parse_segment_output(GOOD, ROOT)
    assert ref == SegmentRef(VideoJobRef("default", "movie", UID), 12, "mp4")
    assert ref is not None and ref.segment_name == "movie-00012"


@pytest.mark.parametrize(
    "uri",
    [
        GOOD.replace("s3://media", "s3://other"),  # another bucket
        GOOD.replace("s3://", "gs://"),  # another scheme
        GOOD.replace("stereo/work", "stereo/workx"),  # prefix is not a whole segment
        GOOD.replace("stereo/work", "stereo"),  # above the root
        GOOD.replace("00012", "0012"),  # index not five digits
        GOOD.replace("00012", "123456"),
        GOOD.replace("00012", "0001a"),
        GOOD.replace("default", "Default"),  # namespace not a DNS label
        GOOD.replace("movie", "m" * 41),  # VideoJob name over 40
        GOOD.replace("movie", "-movie"),
        GOOD.replace(UID, "not_a_uid"),
        GOOD.replace("segments", "segment"),
        GOOD.replace("output.mp4", "input.mp4"),
        GOOD.replace("output.mp4", "output.mp4.part"),
        GOOD.replace("output.mp4", "output."),
        GOOD.replace("output.mp4", "output"),
        GOOD.replace("output.mp4", "output.MP4"),
        GOOD + "/extra",
        f"{ROOT}/default/movie/{UID}/audio.mka",
        f"{ROOT}/default/movie/{UID}/final.mp4",
        f"{ROOT}/",
        "s3://media",
        "not a uri",
        "",
    ],
)
def test_unrelated_uris_return_none(uri: str) -> None:
    assert parse_segment_output(uri, ROOT) is None


@pytest.mark.parametrize(
    ("root", "problem"),
    [
        ("", "not a URI"),
        ("media/stereo", "not a URI"),
        ("http://media/stereo", "unsupported scheme 'http'"),
        ("s3://", "missing bucket"),
        ("s3:///prefix", "missing bucket"),
        ("s3://Media", "invalid s3 bucket name"),
        ("s3://ab", "invalid s3 bucket name"),
        ("s3://a..b", "invalid s3 bucket name"),
        ("s3://under_score", "invalid s3 bucket name"),
        ("gs://-media", "invalid gs bucket name"),
        ("file://host/data", "empty host"),
        ("s3://media//work", "empty path segment"),
        ("s3://media/a/../b", "'..' is not allowed"),
        ("s3://media/./b", "'.' is not allowed"),
        ("s3://media/a b", "may only contain"),
        ("s3://media/a?x=1", "may only contain"),
        ("gs://media/caf\u00e9", "may only contain"),
    ],
)
def test_bad_roots_raise_naming_the_problem(root: str, problem: str) -> None:
    with pytest.raises(ValueError, match=re.escape(problem)):
        StorageRoot.parse(root)
    with pytest.raises(ValueError):
        parse_segment_output(GOOD, root)


def test_root_forms() -> None:
    assert StorageRoot.parse("s3://media/") == StorageRoot("s3", "media", "")
    assert StorageRoot.parse("gs://my_bucket.example.com/a/b/") == StorageRoot(
        "gs", "my_bucket.example.com", "a/b"
    )
    assert StorageRoot.parse("file:///srv/stereo").uri == "file:///srv/stereo"
    assert StorageRoot.parse("file:///").uri == "file:///"


def test_layout_paths() -> None:
    job = VideoJobRef("ns", "movie", UID)
    base = f"{ROOT}/ns/movie/{UID}"
    assert segment_output_uri(ROOT, job, 3, "mp4") == f"{base}/segments/00003/output.mp4"
    assert plan_uri(ROOT, job) == f"{base}/plan.json"
    assert final_output_uri(ROOT, job, "mp4") == f"{base}/final.mp4"
    assert segment_output_uri("file:///data", job, 0, "mp4") == (
        f"file:///data/ns/movie/{UID}/segments/00000/output.mp4"
    )


@pytest.mark.parametrize(
    ("uri", "parts"),
    [
        ("s3://bucket/a/b.mp4", ("s3", "bucket", "a/b.mp4")),
        ("gs://bucket", ("gs", "bucket", "")),
        ("file:///abs/path", ("file", "", "abs/path")),
        ("https://host/v.mp4", ("https", "host", "v.mp4")),
    ],
)
def test_split_uri(uri: str, parts: tuple[str, str, str]) -> None:
    assert split_uri(uri) == parts
    assert join_uri(*parts) == uri


def test_split_uri_rejects_non_uris() -> None:
    with pytest.raises(ValueError, match="not a URI"):
        split_uri("bucket/key")


def test_refs_reject_invalid_parts() -> None:
    with pytest.raises(ValueError, match="namespace"):
        VideoJobRef("Bad", "movie", UID)
    with pytest.raises(ValueError, match="VideoJob name"):
        VideoJobRef("ns", "m" * 41, UID)
    with pytest.raises(ValueError, match="uid"):
        VideoJobRef("ns", "movie", "a/b")
    job = VideoJobRef("ns", "movie", UID)
    with pytest.raises(ValueError, match="segment index"):
        segment_output_uri(ROOT, job, MAX_SEGMENT_INDEX + 1, "mp4")
    with pytest.raises(ValueError, match="extension"):
        segment_output_uri(ROOT, job, 1, "mp4/x")


def test_segment_name() -> None:
    assert segment_name("movie", 7) == "movie-00007"
    with pytest.raises(ValueError, match="segment index"):
        segment_name("movie", -1)


@settings(deadline=None)
@given(
    name=videojob_names,
    index=indexes,
    attempt=st.integers(min_value=0, max_value=MAX_ATTEMPT),
    uid=st.none() | uids,
)
def test_job_names_fit_label_values(name: str, index: int, attempt: int, uid: str | None) -> None:
    job = job_name(name, index, attempt, uid)
    assert len(job) <= MAX_LABEL_VALUE_LENGTH
    assert is_dns1123_subdomain(job)
    assert job == job_name(name, index, attempt, uid)
    assert job.startswith(segment_name(name, index) + "-")


def test_job_name_distinguishes_attempts_and_uids() -> None:
    longest = "v" * MAX_VIDEOJOB_NAME_LENGTH
    assert len(job_name(longest, MAX_SEGMENT_INDEX, MAX_ATTEMPT, UID)) <= MAX_LABEL_VALUE_LENGTH
    assert job_name("movie", 1, 1) == "movie-00001-1"
    assert job_name("movie", 1, 1) != job_name("movie", 1, 2)
    assert job_name("movie", 1, 1, "uid-a") != job_name("movie", 1, 1, "uid-b")
    with pytest.raises(ValueError, match="attempt"):
        job_name("movie", 1, MAX_ATTEMPT + 1)


def test_videojob_name_limit() -> None:
    assert validate_videojob_name("v" * MAX_VIDEOJOB_NAME_LENGTH) == "v" * 40
    with pytest.raises(ValueError) as error:
        validate_videojob_name("v" * (MAX_VIDEOJOB_NAME_LENGTH + 1))
    assert str(error.value) == VIDEOJOB_NAME_MESSAGE
    with pytest.raises(ValueError, match="DNS-1123"):
        validate_videojob_name("Movie")
