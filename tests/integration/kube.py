"""Small helpers for tests that talk to the API server."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def eventually(
    probe: Callable[[], T | None],
    timeout: float = 60.0,
    what: str = "condition",
    on_timeout: Callable[[], str] = str,
) -> T:
    """Poll `probe` until it returns something truthy; fail with `what` (and whatever
    `on_timeout` adds, such as a log tail) after `timeout`."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(0.25)
    raise AssertionError(
        f"timed out after {timeout}s waiting for {what} (last: {last!r})" + on_timeout()
    )
