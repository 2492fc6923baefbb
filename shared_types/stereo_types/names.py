"""API identity and the names the operator derives for Segments and Jobs."""

from __future__ import annotations

import hashlib
import re

GROUP = "stereo.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

VIDEOJOB_KIND = "VideoJob"
VIDEOJOB_PLURAL = "videojobs"
SEGMENT_KIND = "Segment"
SEGMENT_PLURAL = "segments"

# Job names become label values (at most 63 characters) and are built as
# "<videojob>-<index:05d>-<attempt>-<uid hash>", which leaves 40 for the VideoJob.
MAX_VIDEOJOB_NAME_LENGTH = 40
MAX_LABEL_VALUE_LENGTH = 63
MAX_SEGMENT_INDEX = 99_999
MAX_ATTEMPT = 9_999
_UID_HASH_LENGTH = 5

DNS1123_LABEL_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DNS1123_SUBDOMAIN_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
# Kubernetes UIDs are lowercase UUIDs; anything of this shape is accepted so
# tests and other tools can use readable UIDs without ambiguity in storage keys.
UID_PATTERN = r"^[A-Za-z0-9]([-A-Za-z0-9]*[A-Za-z0-9])?$"
MAX_UID_LENGTH = 64

_DNS1123_LABEL = re.compile(DNS1123_LABEL_PATTERN)
_DNS1123_SUBDOMAIN = re.compile(DNS1123_SUBDOMAIN_PATTERN)
_UID = re.compile(UID_PATTERN)

VIDEOJOB_NAME_MESSAGE = (
    f"metadata.name must be at most {MAX_VIDEOJOB_NAME_LENGTH} characters, "
    f"so the Job names derived from it fit in {MAX_LABEL_VALUE_LENGTH}"
)


def is_dns1123_label(value: str) -> bool:
    """A namespace-style name: lowercase alphanumerics and '-', at most 63."""
    return len(value) <= 63 and _DNS1123_LABEL.fullmatch(value) is not None


def is_dns1123_subdomain(value: str) -> bool:
    """An object-style name: DNS labels joined by '.', at most 253."""
    return len(value) <= 253 and _DNS1123_SUBDOMAIN.fullmatch(value) is not None


def is_videojob_name(value: str) -> bool:
    return len(value) <= MAX_VIDEOJOB_NAME_LENGTH and is_dns1123_subdomain(value)


def is_uid(value: str) -> bool:
    return len(value) <= MAX_UID_LENGTH and _UID.fullmatch(value) is not None


def validate_videojob_name(name: str) -> str:
    """Return name, or raise ValueError with the same message as the CRD rule."""
    if len(name) > MAX_VIDEOJOB_NAME_LENGTH:
        raise ValueError(VIDEOJOB_NAME_MESSAGE)
    if not is_dns1123_subdomain(name):
        raise ValueError(f"VideoJob name {name!r} is not a valid DNS-1123 subdomain")
    return name


def _check_index(index: int) -> None:
    if not 0 <= index <= MAX_SEGMENT_INDEX:
        raise ValueError(f"segment index {index} is outside 0..{MAX_SEGMENT_INDEX}")


def segment_name(videojob: str, index: int) -> str:
    """The Segment object for one index of a VideoJob: '<videojob>-<index:05d>'."""
    _check_index(index)
    return f"{videojob}-{index:05d}"


def job_name(videojob: str, index: int, attempt: int, uid: str | None = None) -> str:
    """The inference Job for one attempt at one segment, at most 63 characters.

    Passing the VideoJob's uid appends a short hash of it, so the Jobs of a
    deleted VideoJob that are still being garbage-collected never collide with
    those of a re-created VideoJob of the same name.
    """
    validate_videojob_name(videojob)
    _check_index(index)
    if not 0 <= attempt <= MAX_ATTEMPT:
        raise ValueError(f"attempt {attempt} is outside 0..{MAX_ATTEMPT}")
    name = f"{videojob}-{index:05d}-{attempt}"
    if uid is not None:
        digest = hashlib.sha256(uid.encode()).hexdigest()[:_UID_HASH_LENGTH]
        name = f"{name}-{digest}"
    return name
