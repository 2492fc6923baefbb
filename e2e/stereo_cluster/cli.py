"""`stereo-cluster up|down|status`: the local control plane from the command line."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from stereo_cluster.binaries import build_control_plane
from stereo_cluster.cluster import LocalCluster
from stereo_cluster.controlplane import ClusterState, ControlPlaneError

DEFAULT_STATE_DIR = Path(os.environ.get("STEREO_CLUSTER_DIR", Path.cwd() / ".state" / "cluster"))


def _up(cluster: LocalCluster) -> int:
    started = time.monotonic()
    try:
        state = cluster.up()
    except ControlPlaneError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"cluster ready in {time.monotonic() - started:.1f}s: {state.server}")
    print(f"export KUBECONFIG={state.kubeconfig}")
    return 0


def _status(state_dir: Path) -> int:
    state = ClusterState.load(state_dir)
    healthy = state is not None and LocalCluster(state_dir).control_plane.is_healthy()
    if state is None:
        print(f"no cluster under {state_dir}")
        return 1
    print(
        f"{'running' if healthy else 'NOT healthy'}: {state.server} (Kubernetes v{state.version})"
    )
    print(f"kubeconfig: {state.kubeconfig}")
    if state.pod_cidr:
        print(f"pod CIDR: {state.pod_cidr}, service CIDR: {state.service_cidr}")
    for name, pid in state.pids.items():
        print(f"  {name}: pid {pid}")
    return 0 if healthy else 1


def _run(state_dir: Path, name: str | None, command: list[str]) -> int:
    """Start a long-lived process (an operator on the host, say) that `down` stops too."""
    if not name or not command:
        print("usage: stereo-cluster run --name NAME -- COMMAND...", file=sys.stderr)
        return 2
    control_plane = LocalCluster(state_dir).control_plane
    if control_plane.state is None:
        print(f"no cluster under {state_dir}: run `stereo-cluster up` first", file=sys.stderr)
        return 1
    pid = control_plane.add_process(name, command)
    print(f"{name}: pid {pid}, log {control_plane.log_dir / (name + '.log')}")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="stereo-cluster", description=__doc__)
    p.add_argument("command", choices=("build", "up", "down", "status", "run"))
    p.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR)
    p.add_argument("--name", help="run: the process's name in the cluster state")
    argv = sys.argv[1:] if argv is None else argv
    # Everything after `--` is the command of `run`, options included.
    command = argv[argv.index("--") + 1 :] if "--" in argv else []
    args = p.parse_args(argv[: argv.index("--")] if "--" in argv else argv)
    if args.command == "run":
        return _run(args.state_dir, args.name, command)
    if args.command == "build":
        print(f"control plane binaries: {build_control_plane()}")
        return 0
    cluster = LocalCluster(args.state_dir)
    if args.command == "up":
        return _up(cluster)
    if args.command == "down":
        cluster.down()
        print(f"stopped and removed {args.state_dir}")
        return 0
    return _status(args.state_dir)


if __name__ == "__main__":
    sys.exit(main())
