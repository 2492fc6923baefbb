"""Exact frame rates as integer fractions (floats drift over long videos)."""

from fractions import Fraction

from pydantic import BaseModel, ConfigDict, Field

from stereo_types.plan import SplitPlan

# Rates that cameras and mastering actually use; an average rate close to one
# of these snaps to it so a normalised variable-rate video gets a clean rate.
STANDARD_RATES = tuple(
    Fraction(n, d)
    for n, d in (
        (24000, 1001),
        (24, 1),
        (25, 1),
        (30000, 1001),
        (30, 1),
        (48, 1),
        (50, 1),
        (60000, 1001),
        (60, 1),
        (100, 1),
        (120000, 1001),
        (120, 1),
    )
)
_SNAP_TOLERANCE = 0.005


class FrameRate(BaseModel):
    model_config = ConfigDict(frozen=True)

    num: int = Field(gt=0)
    den: int = Field(gt=0)

    @classmethod
    def from_fraction(cls, value: Fraction) -> "FrameRate":
        return cls(num=value.numerator, den=value.denominator)

    @classmethod
    def parse(cls, text: str | None) -> "FrameRate | None":
        """Parse ffprobe's ``num/den``; ``0/0`` and junk mean unknown (None)."""
        if not text:
            return None
        num, _, den = text.partition("/")
        try:
            value = Fraction(int(num), int(den or "1"))
        except (ValueError, ZeroDivisionError):
            return None
        return cls.from_fraction(value) if value > 0 else None

    @property
    def fraction(self) -> Fraction:
        return Fraction(self.num, self.den)

    def __float__(self) -> float:
        return self.num / self.den

    def __str__(self) -> str:
        return f"{self.num}/{self.den}"

    def seconds(self, frames: int) -> float:
        return float(frames / self.fraction)

    def frames_in(self, seconds: float) -> int:
        """Whole frames closest to ``seconds`` of video."""
        return round(Fraction(seconds) * self.fraction)

    def close_to(self, other: "FrameRate", tolerance: float = 0.001) -> bool:
        return abs(self.fraction - other.fraction) <= self.fraction * Fraction(tolerance)

    def snapped(self) -> "FrameRate":
        """The nearest standard rate within 0.5 %, else this rate with a small denominator."""
        nearest = min(STANDARD_RATES, key=lambda rate: abs(self.fraction - rate))
        if abs(self.fraction - nearest) <= nearest * Fraction(_SNAP_TOLERANCE):
            return FrameRate.from_fraction(nearest)
        return FrameRate.from_fraction(self.fraction.limit_denominator(1001))


def plan_rate(plan: SplitPlan) -> FrameRate:
    """The constant frame rate a split plan works at."""
    return FrameRate(num=plan.fps_num, den=plan.fps_den)
