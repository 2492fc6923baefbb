"""Operator cost per segment at scale: wall time and API requests for VideoJobs of N segments.

Each size runs one VideoJob of N one-second segments through the real operator process on
the real local API server (Job controller, scheduler and garbage collector included); the
pods run on a Node whose kubelet the benchmark plays (tests/operator/scale.py: it writes what
`stereo-infer` would and reports the pod Succeeded), so the figures are the operator's and
the control plane's, not ffmpeg's. Requests are counted from the API server's audit log
under the operator's own identity, as in the integration tests.

    .venv/bin/python benchmarks/operator_scale.py --segments 100 500 2000

Prints one JSON object per size, then a summary. Set STEREO_TEST_KUBECONFIG to use a
running cluster instead of starting one.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import sys
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from kubernetes import client, config  # noqa: E402

from stereo_cluster.cluster import LocalCluster  # noqa: E402
from tests.operator.harness import Harness, setup_cluster  # noqa: E402
from tests.operator.scale import FakeNode, operator_config, run_scale  # noqa: E402
from tests.servers import free_port  # noqa: E402


@contextmanager
def cluster(workdir: Path) -> Iterator[Path]:
    existing = os.environ.get("STEREO_TEST_KUBECONFIG")
    if existing:
        yield Path(existing)
        return
    local = LocalCluster(workdir / "cluster")
    local.up()
    try:
        yield local.kubeconfig
    finally:
        local.down()


def measure(
    kubeconfig: Path,
    workdir: Path,
    segments: int,
    max_inflight: int,
    creates_per_tick: int,
    parallelism: int,
) -> dict[str, Any]:
    api = config.new_client_from_config(config_file=str(kubeconfig))
    access = setup_cluster(kubeconfig, api)
    core = client.CoreV1Api(api)
    namespace = f"bench-{uuid.uuid4().hex[:8]}"
    core.create_namespace({"metadata": {"name": namespace}})
    tmp = workdir / namespace
    harness = Harness(access, api, namespace, tmp)
    harness.workspace.mkdir(parents=True)
    harness.faults.mkdir()
    node = FakeNode(api, f"bench-{uuid.uuid4().hex[:6]}", segments).start()
    metrics_port = free_port()
    try:
        harness.start_operator(
            "--standalone",
            f"--metrics-port={metrics_port}",
            **operator_config(node, max_inflight, creates_per_tick),
        )
        run = run_scale(
            harness,
            node,
            "bench",
            parallelism=parallelism,
            metrics_port=metrics_port,
            timeout=3600,
        )
    finally:
        node.stop()
        harness.teardown()
        core.delete_namespace(namespace)
    figures = run.figures()
    figures["phase"] = run.videojob["status"]["phase"]
    figures["kubelet_errors"] = node.errors[:5]
    figures["kubelet_interruptions"] = node.interruptions
    return figures


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--segments", type=int, nargs="+", default=[100, 500, 2000])
    p.add_argument("--max-inflight", type=int, default=40)
    p.add_argument("--creates-per-tick", type=int, default=250)
    p.add_argument("--parallelism", type=int, default=200)
    args = p.parse_args()
    # SIGTERM (a timeout) unwinds like Ctrl-C: the fake Node, the operator and the namespace
    # are removed on the way out rather than left in a shared cluster.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    results = []
    with tempfile.TemporaryDirectory(prefix="operator-scale-") as tmp, cluster(Path(tmp)) as kc:
        for n in args.segments:
            figures = measure(
                kc, Path(tmp), n, args.max_inflight, args.creates_per_tick, args.parallelism
            )
            print(json.dumps(figures), flush=True)
            results.append(figures)
    keys = ("segments", "wall_seconds", "ms_per_segment", "operator_requests_per_segment")
    summary = {
        "runs": [{k: r[k] for k in keys} for r in results],
        "settings": {
            "max_inflight": args.max_inflight,
            "creates_per_tick": args.creates_per_tick,
            "parallelism": args.parallelism,
            "reconcile_seconds": 1,
        },
        "machine": {
            "cpus": os.cpu_count(),
            "load_average_1m": round(os.getloadavg()[0], 2),
            "python": platform.python_version(),
        },
    }
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
