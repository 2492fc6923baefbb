"""Base classes and shared bounds for the stereo.dev wire models.

Every string and list carries an upper bound because the API server's CEL cost
estimator rejects rules over unbounded values, and the CRDs are generated from
these models.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, StringConstraints
from pydantic.alias_generators import to_camel

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
