"""How ``stereo-infer`` marks an error the operator must tell apart, and how it is read back.

Its Jobs' termination message is the tail of their output (``FallbackToLogsOnError``), so
the last error line carries the reason:

    stereo-infer: error [ModelUnavailable]: depth model 'Any_V2_L': weights not found: ...

and the operator turns a failed Job whose message ends that way into that failure reason.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MODEL_UNAVAILABLE = "ModelUnavailable"
"""The image lacks the engine or depth model a request asks for."""

REASONS = frozenset({MODEL_UNAVAILABLE})
_LINE = re.compile(r"^stereo-infer: error \[(?P<reason>[A-Za-z]+)\]: (?P<message>.*)$")


@dataclass(frozen=True)
class Refusal:
    reason: str
    message: str


def refusal_line(reason: str, message: str) -> str:
    """The error line ``stereo-infer`` prints for an error with a reason."""
    return f"stereo-infer: error [{reason}]: {message}"


def find_refusal(output: str) -> Refusal | None:
    """The last marked error line of a Job's output with a known reason, else None."""
    for line in reversed(output.splitlines()):
        match = _LINE.match(line.strip())
        if match and match["reason"] in REASONS:
            return Refusal(match["reason"], match["message"])
    return None
