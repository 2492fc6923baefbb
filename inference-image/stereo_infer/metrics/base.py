"""What a conversion reports, and the one interface every metrics adapter implements."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

MEGABYTE = 1_000_000


@dataclass(frozen=True)
class Conversion:
    """One finished conversion (a segment, or a whole video)."""

    engine: str
    format: str
    frames: int
    wall_seconds: float
    input_bytes: int
    device: str

    @property
    def frames_per_second(self) -> float | None:
        return self.frames / self.wall_seconds if self.wall_seconds > 0 else None

    @property
    def seconds_per_mb(self) -> float | None:
        """Wall seconds per megabyte (10^6 bytes) of input."""
        return self.wall_seconds / (self.input_bytes / MEGABYTE) if self.input_bytes > 0 else None

    @property
    def labels(self) -> dict[str, str]:
        """The dimensions every adapter reports: few values each, never a segment's name."""
        return {"engine": self.engine, "format": self.format, "device": self.device}


class MetricsSink(Protocol):
    """Where conversion figures go: Prometheus, CloudWatch, Cloud Monitoring."""

    name: str

    def record(self, conversion: Conversion) -> None:
        """Report one conversion; may raise (the caller logs and carries on)."""
        ...
