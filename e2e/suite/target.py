"""The cluster the suite runs against: the embedded stack (stereo_cluster.stack) on a private
state directory, or, with STEREO_E2E_KUBECONFIG, a cluster where the chart is installed already
(the kind path, e2e/kind/), described by environment variables."""

from __future__ import annotations

import os
from pathlib import Path

from stereo_cluster import stack

ENV_PREFIX = "STEREO_E2E_"


def from_environment() -> stack.Stack | None:
    """The existing cluster named by STEREO_E2E_* variables, or None when none is named."""
    kubeconfig = os.environ.get(f"{ENV_PREFIX}KUBECONFIG")
    if not kubeconfig:
        return None

    def need(name: str) -> str:
        value = os.environ.get(f"{ENV_PREFIX}{name}")
        if not value:
            raise RuntimeError(f"STEREO_E2E_KUBECONFIG is set, so {ENV_PREFIX}{name} must be too")
        return value

    bucket = os.environ.get(f"{ENV_PREFIX}BUCKET", stack.BUCKET)
    return stack.Stack(
        state_dir=Path(kubeconfig).parent,
        kubeconfig=Path(kubeconfig),
        namespace=os.environ.get(f"{ENV_PREFIX}NAMESPACE", stack.NAMESPACE),
        release=os.environ.get(f"{ENV_PREFIX}RELEASE", stack.RELEASE),
        s3_endpoint=need("S3_ENDPOINT"),
        bucket=bucket,
        access_key=need("ACCESS_KEY"),
        secret_key=need("SECRET_KEY"),
        workspace=os.environ.get(f"{ENV_PREFIX}WORKSPACE", f"s3://{bucket}/workspace"),
    )


def storage_secret() -> str:
    """The Secret the chart's Jobs take their store keys from (storage.existingSecret)."""
    return os.environ.get(f"{ENV_PREFIX}STORAGE_SECRET", stack.STORAGE_SECRET)
