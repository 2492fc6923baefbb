"""Running stereoctl as a user does: the console script in a subprocess, output captured."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

STEREOCTL = str(Path(sys.executable).parent / "stereoctl")


@dataclass(frozen=True)
class Result:
    code: int
    stdout: str
    stderr: str

    def assert_one_line_error(self, code: int, *fragments: str) -> None:
        """A failure a person can read: the exit code, one `error:` line, last on stderr
        (after any progress display), and no traceback."""
        assert self.code == code, self
        lines = self.stderr.strip().splitlines()
        errors = [line for line in lines if line.startswith("error: ")]
        assert len(errors) == 1 and lines[-1] == errors[0], self
        assert "Traceback" not in self.stdout + self.stderr, self
        for fragment in fragments:
            assert fragment in errors[0], (fragment, errors[0])


def run(
    *args: str, config: Path, timeout: float = 300, env: dict[str, str] | None = None
) -> Result:
    """stereoctl --config CONFIG ARGS; the environment's KUBECONFIG is cleared."""
    environ = {k: v for k, v in os.environ.items() if k not in ("KUBECONFIG", "STEREOCTL_CONFIG")}
    environ.update({"COLUMNS": "200", **(env or {})})
    proc = subprocess.run(
        [STEREOCTL, f"--config={config}", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=environ,
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


def write_config(
    path: Path,
    kubeconfig: Path,
    namespace: str,
    operator_namespace: str | None = None,
    **store: Any,
) -> Path:
    """A stereoctl config file naming the cluster, the namespace and (optionally) a store."""
    data: dict[str, Any] = {"kubeconfig": str(kubeconfig), "namespace": namespace}
    if operator_namespace:
        data["operatorNamespace"] = operator_namespace
    if store:
        data["store"] = store
    path.write_text(yaml.safe_dump(data))
    return path
