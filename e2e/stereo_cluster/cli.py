"""`stereo-cluster up|down|status`: the local control plane from the command line;
`stereo-cluster stack up|down|status`: the whole embedded default (cluster, SeaweedFS, chart)."""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
from pathlib import Path

from stereo_cluster import stack
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


def _print_stack(s: stack.Stack) -> None:
    """Eval-able settings on stdout (`eval "$(stereo-cluster stack up)"`), a summary on stderr."""
    for name, value in {**s.env(), "STEREO_WORKSPACE": s.workspace}.items():
        print(f"export {name}={shlex.quote(value)}")
    print(
        f"release {s.release} in namespace {s.namespace}, workspace {s.workspace}; "
        f"store {s.s3_endpoint} (bucket {s.bucket})",
        file=sys.stderr,
    )


def _stack(action: str | None, state_dir: Path | None) -> int:
    state_dir = state_dir or stack.DEFAULT_STATE_DIR
    if action == "up":
        started = time.monotonic()
        try:
            running = stack.up(state_dir)
        except (stack.StackError, ControlPlaneError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        print(f"stack ready in {time.monotonic() - started:.1f}s", file=sys.stderr)
        _print_stack(running)
        return 0
    if action == "down":
        stack.down(state_dir)
        print(f"stopped the stack under {state_dir}")
        return 0
    found = stack.status(state_dir)
    if found is None:
        print(f"no running stack under {state_dir}", file=sys.stderr)
        return 1
    _print_stack(found)
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="stereo-cluster", description=__doc__)
    p.add_argument("command", choices=("build", "up", "down", "status", "run", "stack"))
    p.add_argument("action", nargs="?", choices=("up", "down", "status"), help="stack: what to do")
    p.add_argument(
        "--state-dir",
        type=Path,
        help=f"default: {DEFAULT_STATE_DIR} (stack: {stack.DEFAULT_STATE_DIR})",
    )
    p.add_argument("--name", help="run: the process's name in the cluster state")
    argv = sys.argv[1:] if argv is None else argv
    # Everything after `--` is the command of `run`, options included.
    command = argv[argv.index("--") + 1 :] if "--" in argv else []
    args = p.parse_args(argv[: argv.index("--")] if "--" in argv else argv)
    if args.command == "stack":
        if args.action is None:
            p.error("stack needs an action: up, down or status")
        return _stack(args.action, args.state_dir)
    if args.action is not None:
        p.error(f"{args.command} takes no action")
    state_dir = args.state_dir or DEFAULT_STATE_DIR
    if args.command == "run":
        return _run(state_dir, args.name, command)
    if args.command == "build":
        print(f"control plane binaries: {build_control_plane()}")
        return 0
    cluster = LocalCluster(state_dir)
    if args.command == "up":
        return _up(cluster)
    if args.command == "down":
        cluster.down()
        print(f"stopped and removed {state_dir}")
        return 0
    return _status(state_dir)


if __name__ == "__main__":
    sys.exit(main())
