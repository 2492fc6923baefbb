"""Files generated from the code (the CRDs, the reference pages): written, or checked for drift
by the same command with --check, so CI fails when someone forgets to regenerate."""

from __future__ import annotations

import difflib
import sys
from collections.abc import Mapping
from pathlib import Path


def drift(root: Path, files: Mapping[Path, str]) -> list[str]:
    """Unified diffs between the files under root and their generated text."""
    diffs = []
    for relative, expected in files.items():
        path = root / relative
        actual = path.read_text() if path.is_file() else ""
        if actual != expected:
            diffs.append(
                "".join(
                    difflib.unified_diff(
                        actual.splitlines(keepends=True),
                        expected.splitlines(keepends=True),
                        fromfile=f"{path} (committed)",
                        tofile=f"{path} (generated)",
                    )
                )
            )
    return diffs


def write(root: Path, files: Mapping[Path, str]) -> list[Path]:
    written = []
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        written.append(path)
    return written


def write_or_check(root: Path, files: Mapping[Path, str], *, check: bool, command: str) -> int:
    """The exit status of a generator: with check, 1 and the diffs when a file is stale."""
    if check:
        diffs = drift(root, files)
        for diff in diffs:
            sys.stdout.write(diff)
        if diffs:
            print(f"generated files are stale: run {command}", file=sys.stderr)
            return 1
        return 0
    for path in write(root, files):
        print(f"wrote {path}")
    return 0
