"""Bind a container's volumes at their mountPaths, then exec the container's command.

Run as `unshare --mount --propagation private -- python -m stereo_cluster.nodeagent.mountns
MOUNTS_JSON -- COMMAND...`: the mounts exist only in this process's mount namespace, so
pods see their own files at the paths their images expect without touching the host's view.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


def _ensure_target(source: Path, target: Path) -> None:
    # A bind mount needs an existing mount point of the same kind as its source.
    if source.is_dir():
        target.mkdir(parents=True, exist_ok=True)
    else:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.touch(exist_ok=True)


def bind(source: str, target: str, read_only: bool) -> None:
    _ensure_target(Path(source), Path(target))
    subprocess.run(["mount", "--bind", source, target], check=True)
    if read_only:
        subprocess.run(["mount", "-o", "remount,bind,ro", target], check=True)


def main(argv: list[str]) -> None:
    spec_file, separator, *command = argv
    if separator != "--" or not command:
        sys.exit("usage: mountns MOUNTS_JSON -- COMMAND...")
    spec = json.loads(Path(spec_file).read_text())
    for mount in spec["mounts"]:
        bind(mount["source"], mount["target"], mount["read_only"])
    # The working directory may itself be a mount target, so change to it only now.
    os.chdir(spec["cwd"])
    os.execvpe(command[0], command, os.environ)


if __name__ == "__main__":
    main(sys.argv[1:])
