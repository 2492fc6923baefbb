"""The canonical storage layout of a VideoJob's files.

Under a workspace root (s3://bucket[/prefix], gs://bucket[/prefix] or
file:///abs/path) every VideoJob incarnation owns one folder:

    <root>/<namespace>/<videojob>/<uid>/plan.json
    <root>/<namespace>/<videojob>/<uid>/final.<ext>
    <root>/<namespace>/<videojob>/<uid>/segments/<index:05d>/output.<ext>

No copy of the source is made: segments read their part of it where it is.

Keys carry the VideoJob's UID, so a VideoJob re-created under the same name is
never completed by an event about its predecessor's files.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Self

from stereo_types.names import (
    MAX_SEGMENT_INDEX,
    is_dns1123_label,
    is_uid,
    is_videojob_name,
    segment_name,
)

SCHEMES = ("s3", "gs", "file")
SEGMENTS_DIR = "segments"
SEGMENT_OUTPUT_STEM = "output"
FINAL_STEM = "final"

_S3_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_GCS_BUCKET_PART = re.compile(r"[a-z0-9]([a-z0-9_-]{0,61}[a-z0-9])?")
# Only URL-unreserved characters in a prefix: event sources percent-encode keys
# differently, and unreserved characters decode the same everywhere.
_PREFIX_SEGMENT = re.compile(r"[A-Za-z0-9._~-]+")
_EXTENSION = re.compile(r"[a-z0-9]{1,8}")
_INDEX = re.compile(r"[0-9]{5}")


def split_uri(uri: str) -> tuple[str, str, str]:
    """Split 'scheme://bucket/key' into (scheme, bucket, key), without decoding.

    file:///abs/path gives ('file', '', 'abs/path').
    """
    scheme, sep, rest = uri.partition("://")
    if not sep or not scheme:
        raise ValueError(f"{uri!r} is not a URI of the form scheme://bucket/key")
    bucket, _, key = rest.partition("/")
    return scheme, bucket, key


def join_uri(scheme: str, bucket: str, key: str) -> str:
    """Inverse of split_uri."""
    if not key and scheme != "file":
        return f"{scheme}://{bucket}"
    return f"{scheme}://{bucket}/{key}"


def _check_bucket(root: str, scheme: str, bucket: str) -> None:
    if scheme == "file":
        if bucket:
            raise ValueError(
                f"workspace root {root!r}: file URIs must have an empty host "
                f"(file:///abs/path), got host {bucket!r}"
            )
        return
    if not bucket:
        raise ValueError(f"workspace root {root!r}: missing bucket name")
    if scheme == "s3":
        valid = _S3_BUCKET.fullmatch(bucket) is not None and ".." not in bucket
        rule = "3-63 characters of a-z, 0-9, '.' and '-', starting and ending alphanumeric"
    else:
        parts = bucket.split(".")
        valid = 3 <= len(bucket) <= (222 if len(parts) > 1 else 63) and all(
            _GCS_BUCKET_PART.fullmatch(part) for part in parts
        )
        rule = "3-63 characters of a-z, 0-9, '-', '_' and '.', starting and ending alphanumeric"
    if not valid:
        raise ValueError(
            f"workspace root {root!r}: invalid {scheme} bucket name {bucket!r} ({rule})"
        )


def _check_prefix(root: str, segments: list[str]) -> None:
    for segment in segments:
        if not segment:
            raise ValueError(f"workspace root {root!r}: empty path segment ('//')")
        if segment in (".", ".."):
            raise ValueError(f"workspace root {root!r}: path segment {segment!r} is not allowed")
        if _PREFIX_SEGMENT.fullmatch(segment) is None:
            raise ValueError(
                f"workspace root {root!r}: path segment {segment!r} may only contain "
                "letters, digits, '.', '_', '~' and '-'"
            )


@dataclass(frozen=True, slots=True)
class StorageRoot:
    """A validated workspace root: scheme, bucket ('' for file) and key prefix."""

    scheme: str
    bucket: str
    prefix: str

    @classmethod
    def parse(cls, uri: str) -> Self:
        """Parse and validate a root URI; ValueError names what is wrong."""
        try:
            scheme, bucket, path = split_uri(uri)
        except ValueError:
            raise ValueError(
                f"workspace root {uri!r} is not a URI; expected s3://bucket[/prefix], "
                "gs://bucket[/prefix] or file:///abs/path"
            ) from None
        if scheme not in SCHEMES:
            raise ValueError(
                f"workspace root {uri!r}: unsupported scheme {scheme!r} (expected s3, gs or file)"
            )
        _check_bucket(uri, scheme, bucket)
        segments = path.removesuffix("/").split("/") if path.removesuffix("/") else []
        _check_prefix(uri, segments)
        return cls(scheme, bucket, "/".join(segments))

    @property
    def uri(self) -> str:
        """The canonical root URI, without a trailing slash."""
        return join_uri(self.scheme, self.bucket, self.prefix)

    def key(self, *parts: str) -> str:
        """The object key of parts below the root."""
        return "/".join([self.prefix, *parts] if self.prefix else parts)

    def uri_for(self, *parts: str) -> str:
        return join_uri(self.scheme, self.bucket, self.key(*parts))

    def relative_parts(self, uri: str) -> list[str] | None:
        """The path segments of uri below the root, or None if it is elsewhere."""
        try:
            scheme, bucket, key = split_uri(uri)
        except ValueError:
            return None
        if (scheme, bucket) != (self.scheme, self.bucket):
            return None
        if self.prefix:
            if not key.startswith(self.prefix + "/"):
                return None
            key = key[len(self.prefix) + 1 :]
        return key.split("/")


def as_root(root: StorageRoot | str) -> StorageRoot:
    return root if isinstance(root, StorageRoot) else StorageRoot.parse(root)


@dataclass(frozen=True, slots=True)
class VideoJobRef:
    """One incarnation of a VideoJob: namespace, name and UID."""

    namespace: str
    name: str
    uid: str

    def __post_init__(self) -> None:
        if not is_dns1123_label(self.namespace):
            raise ValueError(f"namespace {self.namespace!r} is not a DNS-1123 label")
        if not is_videojob_name(self.name):
            raise ValueError(
                f"VideoJob name {self.name!r} is not a DNS-1123 subdomain of at most 40 characters"
            )
        if not is_uid(self.uid):
            raise ValueError(f"uid {self.uid!r} is not a valid UID")

    def parts(self) -> tuple[str, str, str]:
        return (self.namespace, self.name, self.uid)


@dataclass(frozen=True, slots=True)
class SegmentRef:
    """A segment file found in storage: whose segment it is and its extension."""

    videojob: VideoJobRef
    index: int
    ext: str

    @property
    def segment_name(self) -> str:
        """Name of the Segment object this file belongs to."""
        return segment_name(self.videojob.name, self.index)


def _check_extension(ext: str) -> str:
    if _EXTENSION.fullmatch(ext) is None:
        raise ValueError(f"file extension {ext!r} must be 1-8 characters of a-z and 0-9")
    return ext


def _segment_file(stem: str, index: int, ext: str) -> tuple[str, str, str]:
    if not 0 <= index <= MAX_SEGMENT_INDEX:
        raise ValueError(f"segment index {index} is outside 0..{MAX_SEGMENT_INDEX}")
    return (SEGMENTS_DIR, f"{index:05d}", f"{stem}.{_check_extension(ext)}")


def videojob_prefix_uri(root: StorageRoot | str, videojob: VideoJobRef) -> str:
    """The folder holding everything of one VideoJob incarnation (for cleanup)."""
    return as_root(root).uri_for(*videojob.parts())


def segment_output_uri(root: StorageRoot | str, videojob: VideoJobRef, index: int, ext: str) -> str:
    return as_root(root).uri_for(*videojob.parts(), *_segment_file(SEGMENT_OUTPUT_STEM, index, ext))


def final_output_uri(root: StorageRoot | str, videojob: VideoJobRef, ext: str) -> str:
    """The default final output when the VideoJob names none."""
    return as_root(root).uri_for(*videojob.parts(), f"{FINAL_STEM}.{_check_extension(ext)}")


def _parse_segment_file(uri: str, root: StorageRoot | str, stem: str) -> SegmentRef | None:
    parts = as_root(root).relative_parts(uri)
    if parts is None or len(parts) != 6:
        return None
    namespace, name, uid, segments_dir, index, filename = parts
    file_stem, dot, ext = filename.partition(".")
    if (
        segments_dir != SEGMENTS_DIR
        or _INDEX.fullmatch(index) is None
        or (file_stem, dot) != (stem, ".")
        or _EXTENSION.fullmatch(ext) is None
        or not is_dns1123_label(namespace)
        or not is_videojob_name(name)
        or not is_uid(uid)
    ):
        return None
    return SegmentRef(VideoJobRef(namespace, name, uid), int(index), ext)


def parse_segment_output(uri: str, root: StorageRoot | str) -> SegmentRef | None:
    """The segment whose output uri is, or None for any other object.

    Never raises for an unrelated uri: the watcher sees every key in a bucket.
    A bad root still raises ValueError.
    """
    return _parse_segment_file(uri, root, SEGMENT_OUTPUT_STEM)
