"""`python -m stereo_cluster.nodeagent`: run one node of the local cluster."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from stereo_cluster.nodeagent.agent import serve
from stereo_cluster.nodeagent.config import NodeConfig, Taint


def parse_args(argv: list[str] | None = None) -> NodeConfig:
    p = argparse.ArgumentParser(prog="stereo-node-agent", description=__doc__)
    p.add_argument("--name", required=True)
    p.add_argument("--kubeconfig", type=Path, required=True)
    p.add_argument("--work-dir", type=Path, required=True)
    p.add_argument("--api-server-port", type=int, required=True)
    p.add_argument("--cpu", default="8")
    p.add_argument("--memory", default="32Gi")
    p.add_argument("--gpus", type=int, default=0, help="fake nvidia.com/gpu capacity")
    p.add_argument("--label", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--taint", action="append", default=[], metavar="KEY[=VALUE]:EFFECT")
    p.add_argument("--pod-cidr", help="this node's pod /24 (none: host networking)")
    p.add_argument("--cluster-cidr", help="the cluster's pod range, reachable from pods")
    p.add_argument("--service-cidr", help="the cluster's Service range")
    p.add_argument("--service-proxy", action="store_true", help="proxy the cluster's Services")
    p.add_argument("--proxy-kubeconfig", type=Path, help="kube-proxy's identity for the proxy")
    p.add_argument("--serving-cert", type=Path, help="the kubelet API's certificate (logs)")
    p.add_argument("--serving-key", type=Path, help="its key")
    p.add_argument("--client-ca", type=Path, help="the CA of the kubelet API's clients")
    args = p.parse_args(argv)
    if args.service_proxy and (args.proxy_kubeconfig is None or args.service_cidr is None):
        p.error("--service-proxy needs --proxy-kubeconfig and --service-cidr")
    serving = (args.serving_cert, args.serving_key, args.client_ca)
    if any(serving) and not all(serving):
        p.error("--serving-cert, --serving-key and --client-ca go together")
    labels = dict(item.split("=", 1) for item in args.label)
    return NodeConfig(
        name=args.name,
        kubeconfig=args.kubeconfig,
        work_dir=args.work_dir,
        api_server_port=args.api_server_port,
        cpu=args.cpu,
        memory=args.memory,
        gpus=args.gpus,
        labels=labels,
        taints=tuple(Taint.parse(t) for t in args.taint),
        pod_cidr=args.pod_cidr,
        cluster_cidr=args.cluster_cidr or args.pod_cidr,
        service_cidr=args.service_cidr,
        service_proxy=args.service_proxy,
        proxy_kubeconfig=args.proxy_kubeconfig,
        serving_cert=args.serving_cert,
        serving_key=args.serving_key,
        client_ca=args.client_ca,
    )


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    serve(parse_args(argv))


if __name__ == "__main__":
    main()
