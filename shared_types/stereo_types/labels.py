"""Label keys and the finalizer the operator puts on what it creates; clients select by them.

Every object carries the VideoJob's UID so that the objects of a deleted VideoJob that are
still being garbage-collected are never mistaken for those of a re-created one.
"""

from __future__ import annotations

from enum import StrEnum

VIDEOJOB = "stereo.dev/videojob"
VIDEOJOB_UID = "stereo.dev/videojob-uid"
ROLE = "stereo.dev/role"
SEGMENT_INDEX = "stereo.dev/segment-index"
ATTEMPT = "stereo.dev/attempt"
# Held on a VideoJob until the operator has stopped its Jobs and removed its intermediates.
CLEANUP_FINALIZER = "stereo.dev/cleanup"


class Role(StrEnum):
    SPLIT = "split"
    INFERENCE = "inference"
    ASSEMBLE = "assemble"
