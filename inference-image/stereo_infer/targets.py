"""Where a plan and the segment outputs it names go. The two ways differ only in naming.

``LayoutTargets`` follows the canonical storage layout of a VideoJob (what the operator's
planning Job uses); ``LocalTargets`` puts everything under one folder or URI prefix, for
people and benchmarks:

    <dir>/plan.json    <dir>/<index:05d>/output.mp4
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from stereo_infer.errors import UnsupportedUriError
from stereo_infer.io import scheme_of
from stereo_types import layout
from stereo_types.layout import StorageRoot, VideoJobRef
from stereo_types.plan import PLAN_FILE, SEGMENT_EXTENSION, plan_uri

_TARGET_SCHEMES = frozenset({"file", "s3", "gs"})


class PlanTargets(Protocol):
    @property
    def plan(self) -> str:
        """Where the plan goes."""
        ...

    def segment_output(self, index: int) -> str:
        """Where the engine is to write the converted segment."""
        ...


@dataclass(frozen=True)
class LayoutTargets:
    """The canonical layout under a workspace root (``stereo_types.layout``)."""

    root: StorageRoot
    videojob: VideoJobRef

    @property
    def plan(self) -> str:
        return plan_uri(self.root, self.videojob)

    def segment_output(self, index: int) -> str:
        return layout.segment_output_uri(self.root, self.videojob, index, SEGMENT_EXTENSION)


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

    def segment_output(self, index: int) -> str:
        return f"{self.prefix}/{index:05d}/{layout.SEGMENT_OUTPUT_STEM}.{SEGMENT_EXTENSION}"
