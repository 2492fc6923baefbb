"""The storage event every notification source is normalized into."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Self

from pydantic import AwareDatetime, Field, model_validator

from stereo_types.base import MAX_URI_LENGTH, SpecModel, utc_now
from stereo_types.layout import SegmentRef, StorageRoot, parse_segment_output, split_uri
from stereo_types.segment import CompletionSource, Etag, SegmentCompletion, Sequencer


class StorageEventKind(StrEnum):
    CREATED = "created"
    DELETED = "deleted"


class StorageEvent(SpecModel):
    """An object created or deleted, whichever service reported it.

    uri, bucket and key are not constrained beyond length: the watcher sees
    every key in a bucket, including keys that no layout would produce.
    """

    kind: StorageEventKind
    uri: str = Field(min_length=1, max_length=MAX_URI_LENGTH)
    """scheme://bucket/key of the object."""
    bucket: str = Field(max_length=222)
    """Bucket of the object ('' for file URIs)."""
    key: str = Field(max_length=1024)
    """Object key, percent-decoded."""
    size: int = Field(default=0, ge=0)
    etag: Etag | None = None
    generation: int | None = Field(default=None, ge=0)
    sequencer: Sequencer | None = None
    event_time: AwareDatetime
    source: CompletionSource

    @model_validator(mode="after")
    def _uri_matches_bucket_and_key(self) -> Self:
        _, bucket, key = split_uri(self.uri)
        if (bucket, key) != (self.bucket, self.key):
            raise ValueError(
                f"uri {self.uri!r} does not match bucket {self.bucket!r} and key {self.key!r}"
            )
        return self

    def segment_ref(self, root: StorageRoot | str) -> SegmentRef | None:
        """The segment this event reports the output of, or None."""
        return parse_segment_output(self.uri, root)

    def to_completion(self, recorded_at: datetime | None = None) -> SegmentCompletion:
        """The SegmentCompletion this creation event records."""
        if self.kind is not StorageEventKind.CREATED:
            raise ValueError(f"a {self.kind} event does not complete a segment")
        return SegmentCompletion(
            uri=self.uri,
            size=self.size,
            etag=self.etag,
            generation=self.generation,
            sequencer=self.sequencer,
            event_time=self.event_time,
            source=self.source,
            recorded_at=recorded_at or utc_now(),
        )
