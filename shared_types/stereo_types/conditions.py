"""metav1.Condition and a helper that keeps lastTransitionTime meaningful."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum
from typing import Annotated

from pydantic import AwareDatetime, Field

from stereo_types.base import MAX_CONDITIONS, JsonDict, StatusModel, utc_now

# Bounds and patterns as in upstream metav1.Condition.
CONDITION_TYPE_PATTERN = (
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$"
)
CONDITION_REASON_PATTERN = r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$"

# Schema of a `conditions` list: a map keyed by type, so server-side apply and
# strategic merges treat each condition as its own entry.
_CONDITIONS_LIST_SCHEMA: JsonDict = {
    "x-kubernetes-list-type": "map",
    "x-kubernetes-list-map-keys": ["type"],
}


class ConditionStatus(StrEnum):
    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


class Condition(StatusModel):
    """One aspect of the object's current state (metav1.Condition)."""

    type: str = Field(max_length=316, pattern=CONDITION_TYPE_PATTERN)
    """Type of condition in CamelCase, e.g. Ready."""
    status: ConditionStatus
    """Status of the condition: True, False or Unknown."""
    reason: str = Field(min_length=1, max_length=1024, pattern=CONDITION_REASON_PATTERN)
    """Programmatic identifier of the last transition's cause, in CamelCase."""
    message: str = Field(max_length=32768)
    """Human-readable details of the transition; may be empty."""
    last_transition_time: AwareDatetime
    """When the status last changed."""
    observed_generation: int | None = Field(default=None, ge=0)
    """metadata.generation the condition was set for."""


# The `conditions` field of a status; use with Field(default_factory=list).
ConditionList = Annotated[
    list[Condition], Field(max_length=MAX_CONDITIONS, json_schema_extra=_CONDITIONS_LIST_SCHEMA)
]


def find_condition(conditions: Sequence[Condition], condition_type: str) -> Condition | None:
    return next((c for c in conditions if c.type == condition_type), None)


def is_condition_true(conditions: Sequence[Condition], condition_type: str) -> bool:
    found = find_condition(conditions, condition_type)
    return found is not None and found.status is ConditionStatus.TRUE


def set_condition(
    conditions: Sequence[Condition],
    condition_type: str,
    status: ConditionStatus | str,
    reason: str,
    message: str = "",
    *,
    observed_generation: int | None = None,
    now: datetime | None = None,
) -> list[Condition]:
    """Return a copy of conditions with condition_type set, keeping the order.

    lastTransitionTime only moves when the status changes, so it says how long
    the object has been in its current state rather than when it was last
    reconciled.
    """
    existing = find_condition(conditions, condition_type)
    new_status = ConditionStatus(status)
    if existing is not None and existing.status is new_status:
        transition_time = existing.last_transition_time
    else:
        transition_time = now or utc_now()
    updated = Condition(
        type=condition_type,
        status=new_status,
        reason=reason,
        message=message,
        last_transition_time=transition_time,
        observed_generation=observed_generation,
    )
    if existing is None:
        return [*conditions, updated]
    return [updated if c.type == condition_type else c for c in conditions]
