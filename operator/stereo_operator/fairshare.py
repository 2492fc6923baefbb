"""Max-min fair shares of the cluster-wide cap on inference Jobs.

Every VideoJob's timer computes the same shares from the same index snapshot, so no VideoJob
needs to know what the others decided: a VideoJob at its share starts nothing new while others
wait, and a slot one of them cannot use goes to the rest. Shares never add up to more than the
cap, so concurrent timers cannot overshoot it together.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class Demand:
    key: Hashable
    wanted: int
    """Slots the VideoJob could use now (running plus startable, capped by its parallelism)."""
    created_at: datetime | None = None
    """Older VideoJobs get the odd slot when the cap does not divide evenly."""


def _order(demand: Demand) -> tuple[float, str]:
    stamp = demand.created_at.timestamp() if demand.created_at is not None else float("inf")
    return (stamp, str(demand.key))


def fair_shares(cap: int, demands: Sequence[Demand]) -> dict[Hashable, int]:
    """Water-filling: everyone gets an equal part, capped at what they want, repeatedly."""
    shares: dict[Hashable, int] = {d.key: 0 for d in demands}
    wanted = {d.key: max(0, d.wanted) for d in demands}
    remaining = max(0, cap)
    hungry = [d.key for d in sorted(demands, key=_order) if wanted[d.key] > 0]
    while remaining > 0 and hungry:
        each = remaining // len(hungry)
        if each == 0:
            # Fewer slots than claimants: one each, oldest first.
            for key in hungry[:remaining]:
                shares[key] += 1
            break
        for key in hungry:
            give = min(each, wanted[key] - shares[key])
            shares[key] += give
            remaining -= give
        hungry = [k for k in hungry if shares[k] < wanted[k]]
    return shares
