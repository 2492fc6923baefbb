"""Where a split publishes its files. The two ways differ only in how URIs are named.

``LayoutTargets`` follows the canonical storage layout of a VideoJob (what the operator's
split Job uses); ``LocalTargets`` puts everything under one folder or URI prefix, for
people and benchmarks:

    <dir>/<index:05d>/input.mp4    <dir>/<index:05d>/output.mp4    <dir>/audio.<ext>
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from stereo_infer.errors import UnsupportedUriError
from stereo_infer.io import scheme_of
from stereo_types import layout
from stereo_types.layout import StorageRoot, VideoJobRef
from stereo_types.plan import PLAN_FILE, SEGMENT_EXTENSION, plan_uri

_AUDIO_STEM = layout.AUDIO_FILE.rsplit(".", 1)[0]
_TARGET_SCHEMES = frozenset({"file", "s3", "gs"})


class SplitTargets(Protocol):
    @property
    def plan(self) -> str:
        """Where the plan goes: written last, its presence means the split finished."""
        ...

    def segment_input(self, index: int) -> str: ...

    def segment_output(self, index: int) -> str:
        """Where the engine is to write the converted segment."""
        ...

    def audio(self, ext: str) -> str:
        """The kept-aside audio, in a container with extension ``ext``."""
        ...


@dataclass(frozen=True)
class LayoutTargets:
    """The canonical layout under a workspace root (``stereo_types.layout``)."""

    root: StorageRoot
    videojob: VideoJobRef

    @property
    def plan(self) -> str:
        return plan_uri(self.root, self.videojob)

    def segment_input(self, index: int) -> str:
        return layout.segment_input_uri(self.root, self.videojob, index, SEGMENT_EXTENSION)

    def segment_output(self, index: int) -> str:
        return layout.segment_output_uri(self.root, self.videojob, index, SEGMENT_EXTENSION)

    def audio(self, ext: str) -> str:
        # Next to the layout's audio.mka; an mp4 source's AAC keeps its exact
        # duration only in an mp4 container (.m4a).
        if f"{_AUDIO_STEM}.{ext}" == layout.AUDIO_FILE:
            return layout.audio_uri(self.root, self.videojob)
        return self.root.uri_for(*self.videojob.parts(), f"{_AUDIO_STEM}.{ext}")


@dataclass(frozen=True)
class LocalTargets:
    """Everything under one prefix: a local folder (as file://) or an s3:// or gs:// prefix."""

    prefix: str
    plan: str

    @classmethod
    def under(cls, output_dir: str, plan_out: str | None = None) -> "LocalTargets":
        if scheme_of(output_dir) == "":
            prefix = Path(output_dir).resolve().as_uri()
        elif scheme_of(output_dir) in _TARGET_SCHEMES:
            prefix = output_dir.rstrip("/")
        else:
            raise UnsupportedUriError(
                f"cannot write segments to {output_dir!r}; use a folder, file://, s3:// or gs://"
            )
        return cls(prefix=prefix, plan=plan_out or f"{prefix}/{PLAN_FILE}")

    def segment_input(self, index: int) -> str:
        return self._segment_file(index, layout.SEGMENT_INPUT_STEM)

    def segment_output(self, index: int) -> str:
        return self._segment_file(index, layout.SEGMENT_OUTPUT_STEM)

    def audio(self, ext: str) -> str:
        return f"{self.prefix}/{_AUDIO_STEM}.{ext}"

    def _segment_file(self, index: int, stem: str) -> str:
        return f"{self.prefix}/{index:05d}/{stem}.{SEGMENT_EXTENSION}"
