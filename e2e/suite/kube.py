"""kubectl and helm as a user runs them, against the suite's cluster."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import yaml

from stereo_cluster import stack

KUBECTL = str(Path(sys.executable).parent / "kubectl")
T = TypeVar("T")


class Kube:
    def __init__(self, target: stack.Stack) -> None:
        self.target = target

    def kubectl(self, *args: str, stdin: str | None = None, timeout: float = 120) -> str:
        done = subprocess.run(
            [KUBECTL, f"--kubeconfig={self.target.kubeconfig}", *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        assert done.returncode == 0, f"kubectl {' '.join(args)}: {done.stderr}"
        return done.stdout

    def apply(self, *objects: dict[str, Any]) -> None:
        self.kubectl("apply", "-f", "-", stdin=yaml.safe_dump_all(objects, sort_keys=False))

    def get(self, kind: str, name: str, namespace: str) -> dict[str, Any]:
        out = self.kubectl("get", kind, name, "-n", namespace, "-o", "json")
        found: dict[str, Any] = json.loads(out)
        return found

    def items(self, kind: str, *selector: str) -> list[dict[str, Any]]:
        """Objects of `kind`; selector: `-n NS`, `-A`, `-l LABELS`..."""
        listed: list[dict[str, Any]] = json.loads(
            self.kubectl("get", kind, *selector, "-o", "json")
        )["items"]
        return listed

    def helm(self, *args: str, timeout: float = stack.HELM_TIMEOUT + 60) -> str:
        return stack.helm(self.target.state_dir, self.target.kubeconfig, *args, timeout=timeout)


def eventually(check: Callable[[], T | None], timeout: float, what: Callable[[], str]) -> T:
    """The first truthy result of `check`; fails with `what()` (the state seen) on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s: {what()}")
        time.sleep(1.0)
