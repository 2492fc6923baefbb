"""One invocation's settings, and the cluster and store they lead to."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from rich.console import Console

from stereo_storage import StorageConfig
from stereoctl import cluster_store
from stereoctl import config as config_file
from stereoctl.config import CliConfig, StoreSettings
from stereoctl.errors import StoreError
from stereoctl.kube import Kube, Target


@dataclass
class Session:
    """The global options; connects lazily, so commands that need no cluster never touch it."""

    kubeconfig: str | None = None
    context: str | None = None
    namespace: str | None = None
    config_path: Path | None = None
    out: Console = field(default_factory=Console)
    err: Console = field(default_factory=lambda: Console(stderr=True))

    @cached_property
    def config(self) -> CliConfig:
        return config_file.load(self.config_path)

    def kube(self, *, require_crds: bool = True) -> Kube:
        """The cluster, checked: reachable, and (by default) serving the stereo.dev CRDs."""
        # --kubeconfig, then $KUBECONFIG (read by the client), then the config file's.
        from_file = None if os.environ.get("KUBECONFIG") else self.config.kubeconfig
        target = Target(self.kubeconfig or from_file, self.context)
        kube = Kube.connect(target, self.namespace, self.config.namespace)
        if require_crds:
            kube.require_crds()
        return kube

    def store(self, kube: Kube) -> StoreSettings:
        """Where uploads go: the config file's store, else the chart's ConfigMap."""
        found = self._store(kube)
        if found is None:
            raise StoreError(
                f"no object store configured: write {config_file.default_path()} "
                "(store: root, endpoint, keys), install the Helm chart, or pass a URI"
            )
        return found

    def storage_config(self, kube: Kube) -> StorageConfig:
        """Settings for reading an output: the store's when one is known, else the defaults."""
        found = self._store(kube)
        return found.storage_config() if found else StorageConfig()

    def _store(self, kube: Kube) -> StoreSettings | None:
        return self.config.store or cluster_store.discover(kube, self.config.operator_namespace)
