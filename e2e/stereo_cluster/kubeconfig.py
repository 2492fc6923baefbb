"""Kubeconfig files for the local control plane's users."""

from __future__ import annotations

from pathlib import Path

import yaml

from stereo_cluster.pki import KeyPair

CONTEXT = "stereo-local"


def write(path: Path, server: str, ca_cert: Path, client: KeyPair) -> None:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": CONTEXT, "cluster": {"server": server, "certificate-authority": str(ca_cert)}}
        ],
        "users": [
            {
                "name": CONTEXT,
                "user": {"client-certificate": str(client.cert), "client-key": str(client.key)},
            }
        ],
        "contexts": [{"name": CONTEXT, "context": {"cluster": CONTEXT, "user": CONTEXT}}],
        "current-context": CONTEXT,
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    path.chmod(0o600)
