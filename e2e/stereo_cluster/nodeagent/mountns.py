"""Bind a container's volumes at their mountPaths, then exec the container's command.

Run as `unshare --mount [--uts] --propagation private -- python -m
stereo_cluster.nodeagent.mountns MOUNTS_JSON -- COMMAND...`: the mounts exist only in this
process's mount namespace, so pods see their own files at the paths their images expect
without touching the host's view. With `--uts` the spec's hostname (the pod's) is set too.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any


def _ensure_target(source: Path, target: Path) -> None:
    # A bind mount needs an existing mount point of the same kind as its source.
    if source.is_dir():
        target.mkdir(parents=True, exist_ok=True)
    else:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.touch(exist_ok=True)


def bind(source: str, target: str, read_only: bool) -> None:
    _ensure_target(Path(source), Path(target))
    # No canonicalizing: mount(8) would resolve /proc/<pid>/fd/N back to a path name, which
    # a volume mounted above it may already hide.
    subprocess.run(["mount", "--no-canonicalize", "--bind", source, target], check=True)
    if read_only:
        subprocess.run(["mount", "-o", "remount,bind,ro", target], check=True)


def _hides(target: str, path: str) -> bool:
    return Path(path) != Path(target) and Path(path).is_relative_to(target)


def _depth(mount: dict[str, Any]) -> int:
    return len(Path(mount["target"]).parts)


def main(argv: list[str]) -> None:
    spec_file, separator, *command = argv
    if separator != "--" or not command:
        sys.exit("usage: mountns MOUNTS_JSON -- COMMAND...")
    spec = json.loads(Path(spec_file).read_text())
    # Parents before children, as a container runtime orders mounts: /tmp, then /tmp/x.
    mounts = sorted(spec["mounts"], key=_depth)
    # Every source and the working directory are held open first: a volume mounted over a
    # directory above them (an emptyDir at /tmp over a pod directory under /tmp) would
    # otherwise hide them. The binds then go through /proc/<pid>/fd.
    held = [os.open(m["source"], os.O_PATH) for m in mounts]
    cwd = os.open(spec["cwd"], os.O_PATH | os.O_DIRECTORY)
    kept = [(path, os.open(path, os.O_PATH | os.O_DIRECTORY)) for path in spec.get("keep", [])]
    for mount, fd in zip(mounts, held, strict=True):
        bind(f"/proc/{os.getpid()}/fd/{fd}", mount["target"], mount["read_only"])
        os.close(fd)
    # The container runs from the host's project environment: an emptyDir at /tmp over a
    # checkout under /tmp would hide its programs, so bind those directories back on top.
    for path, fd in kept:
        if any(_hides(m["target"], path) for m in mounts):
            bind(f"/proc/{os.getpid()}/fd/{fd}", path, read_only=False)
        os.close(fd)
    if spec.get("hostname"):
        socket.sethostname(spec["hostname"])
    # The working directory may itself be a mount target, so change to it by name only now;
    # if a volume hid it, go back to the directory held open.
    try:
        os.chdir(spec["cwd"])
    except FileNotFoundError:
        os.fchdir(cwd)
    os.close(cwd)
    os.execvpe(command[0], command, os.environ)


if __name__ == "__main__":
    main(sys.argv[1:])
