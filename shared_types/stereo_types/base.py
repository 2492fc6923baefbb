"""Base classes and shared bounds for the stereo.dev wire models.

Every string and list carries an upper bound because the API server's CEL cost
estimator rejects rules over unbounded values, and the CRDs are generated from
these models.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any

from annotated_types import Interval
from pydantic import (
    BaseModel,
    ConfigDict,
    GetCoreSchemaHandler,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    ValidatorFunctionWrapHandler,
)
from pydantic.alias_generators import to_camel
from pydantic_core import CoreSchema, PydanticCustomError, core_schema

# Bounds shared by several models (and so by the generated CRDs).
MAX_URI_LENGTH = 2048
MAX_ROOT_URI_LENGTH = 1024
MAX_MESSAGE_LENGTH = 4096
MAX_REASON_LENGTH = 128
MAX_CONDITIONS = 16

# Storage URIs the operator can write to, and sources it can read from.
# Patterns are anchored because both pydantic and Kubernetes use search semantics.
StorageUri = Annotated[
    str, StringConstraints(max_length=MAX_URI_LENGTH, pattern=r"^(s3|gs|file)://\S+$")
]
RootUri = Annotated[
    str, StringConstraints(max_length=MAX_ROOT_URI_LENGTH, pattern=r"^(s3|gs|file)://\S+$")
]
SourceUri = Annotated[
    str, StringConstraints(max_length=MAX_URI_LENGTH, pattern=r"^(s3|gs|file|https?)://\S+$")
]

JsonDict = dict[str, Any]


class WireModel(BaseModel):
    """camelCase on the wire, snake_case in Python; unknown fields are errors."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        use_attribute_docstrings=True,
    )

    def to_wire(self) -> JsonDict:
        """The Kubernetes object shape: camelCase keys, JSON values, no nulls."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class SpecModel(WireModel):
    """Desired state written by users: strict, so typos fail loudly."""


class StatusModel(WireModel):
    """Observed state: tolerant of fields written by other tools (e.g. kopf)."""

    model_config = ConfigDict(extra="ignore")


@dataclass(frozen=True)
class Rule:
    """Pydantic metadata for a setting: its constraints, and one message for every value they
    refuse, saying what is allowed and what was given (pydantic's own names one bound, no
    value). Readers put the setting's name before it: a field path, or an option."""

    allowed: str
    constraints: tuple[Any, ...] = ()

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        inner = handler(Annotated[source, *self.constraints] if self.constraints else source)
        return core_schema.no_info_wrap_validator_function(self._check, inner)

    def _check(self, value: Any, validate: ValidatorFunctionWrapHandler) -> Any:
        try:
            return validate(value)
        except ValidationError:
            shown = repr(value) if isinstance(value, str) else str(value)
            raise PydanticCustomError(
                "setting",
                "must be {allowed}, not {value}",
                {"allowed": self.allowed, "value": shown},
            ) from None


def between(
    kind: type[int] | type[float],
    *,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
) -> Rule:
    """A number within bounds, e.g. 'a number > 0 and <= 10'."""
    bounds = ((">=", ge), (">", gt), ("<=", le))
    limits = " and ".join(f"{op} {bound}" for op, bound in bounds if bound is not None)
    noun = "an integer" if kind is int else "a number"
    return Rule(f"{noun} {limits}", (Interval(ge=ge, gt=gt, le=le),))


def one_of(choices: type[StrEnum]) -> Rule:
    """One of an enum's values, e.g. 'one of h264, hevc'."""
    return Rule("one of " + ", ".join(choice.value for choice in choices))


class SettingError(ValueError):
    """A value a setting's rule refuses; the reader adds the setting's name."""


@functools.cache
def _adapter(kind: Any) -> TypeAdapter[Any]:
    return TypeAdapter(kind)


def check_setting(kind: Any, value: Any) -> Any:
    """``value`` validated by the setting type ``kind`` (and converted: '2.5' -> 2.5)."""
    try:
        return _adapter(kind).validate_python(value)
    except ValidationError as exc:
        raise SettingError(exc.errors()[0]["msg"]) from None


def cel_rule(rule: str, message: str) -> dict[str, str]:
    """One x-kubernetes-validations entry; every rule carries a human message."""
    return {"rule": rule, "message": message}


def cel_rules(*rules: dict[str, str]) -> JsonDict:
    """json_schema_extra carrying CEL rules into the generated CRD."""
    return {"x-kubernetes-validations": list(rules)}


def object_default(model: type[WireModel]) -> JsonDict:
    """json_schema_extra defaulting an object field to the model's full defaults.

    Spelled out rather than `{}`: the API server checks a default against the object's
    CEL rules before nested defaults apply, so an empty default would break them.
    """
    return {"default": model().to_wire()}


def utc_now() -> datetime:
    """Now in UTC at second precision, the precision of metav1.Time."""
    return datetime.now(UTC).replace(microsecond=0)
