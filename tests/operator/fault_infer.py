"""A stand-in for the `stereo-infer` command that misbehaves on request, for operator tests.

The test config makes it the command of the operator's Jobs. It reads the rules of the
VideoJob it runs for from $STEREO_TEST_FAULTS/<namespace>/<videojob>.json:

    {"convert": {"1": {"1": "fail:75"}, "*": {"*": "sleep:1.5"}},
     "plan": "fail:3", "assemble": "sleep:1"}

keyed by subcommand, then (convert only) segment index and attempt, "*" matching any. An
action is one of: fail:N (exit N, with a message on stderr), skip (exit 0 without running:
no output), sleep:S (wait S seconds, then run the real command), or missing: run it.
Everything else is handed to the real `stereo-infer` unchanged.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

FAULTS_ENV = "STEREO_TEST_FAULTS"


def _pick(table: Any, key: str) -> Any:
    if not isinstance(table, dict):
        return table
    return table.get(key, table.get("*"))


def action_for(argv: list[str], env: dict[str, str]) -> str | None:
    root = env.get(FAULTS_ENV)
    if not root or not argv:
        return None
    rules_file = Path(root) / env.get("STEREO_NAMESPACE", "") / f"{env.get('STEREO_VIDEOJOB')}.json"
    if not rules_file.is_file():
        return None
    rules = json.loads(rules_file.read_text())
    action = rules.get(argv[0])
    if argv[0] == "convert":
        action = _pick(
            _pick(action, env.get("STEREO_SEGMENT_INDEX", "")), env.get("STEREO_ATTEMPT", "")
        )
    return action if isinstance(action, str) else None


def run_real(argv: list[str]) -> None:
    real = shutil.which("stereo-infer")
    if real:
        os.execv(real, [real, *argv])
    os.execv(sys.executable, [sys.executable, "-m", "stereo_infer", *argv])


def main() -> None:
    argv = sys.argv[1:]
    action = action_for(argv, dict(os.environ))
    if action is not None:
        kind, _, value = action.partition(":")
        if kind == "fail":
            print(f"stereo-infer: error: injected failure (exit {value})", file=sys.stderr)
            sys.exit(int(value))
        if kind == "skip":
            print("injected: exiting 0 without writing the output", file=sys.stderr)
            sys.exit(0)
        if kind == "sleep":
            time.sleep(float(value))
    run_real(argv)


if __name__ == "__main__":
    main()
