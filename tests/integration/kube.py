"""Small helpers for tests that talk to the API server."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

ROOT = Path(__file__).resolve().parents[2]
KUBECTL = str(Path(sys.executable).parent / "kubectl")
CRD_NAMES = ("videojobs.stereo.dev", "segments.stereo.dev")


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


def kubectl(
    kubeconfig: Path, *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """The project's pinned kubectl (next to this Python), against `kubeconfig`."""
    return subprocess.run(
        [KUBECTL, f"--kubeconfig={kubeconfig}", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )


def apply_crds(kubeconfig: Path) -> None:
    """The project's CRDs, applied server-side and Established."""
    applied = kubectl(
        kubeconfig, "apply", "--server-side", "--force-conflicts", "-f", str(ROOT / "crds")
    )
    assert applied.returncode == 0, applied.stderr
    names = [f"crd/{name}" for name in CRD_NAMES]
    waited = kubectl(kubeconfig, "wait", "--for=condition=Established", "--timeout=60s", *names)
    assert waited.returncode == 0, waited.stderr
