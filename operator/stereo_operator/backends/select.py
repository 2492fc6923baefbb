"""Which Backend serves a VideoJob's spec.backend.type."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from stereo_operator.backends.base import Backend, BackendUnavailable
from stereo_operator.backends.http import HttpBackend
from stereo_operator.backends.job import JobBackend
from stereo_operator.backends.managed import SageMakerAsyncBackend
from stereo_operator.backends.stub import StubBackend
from stereo_operator.config import OperatorConfig
from stereo_operator.views import JobView
from stereo_types.backend import BackendType
from stereo_types.layout import VideoJobRef
from stereo_types.videojob import VideoJobSpec

if TYPE_CHECKING:
    from stereo_operator.kube import Kube


def backend_for(
    ref: VideoJobRef,
    spec: VideoJobSpec,
    config: OperatorConfig,
    jobs_of_videojob: Iterable[JobView],
    kube: Kube | None = None,
) -> Backend:
    """The backend for spec.backend.type; BackendUnavailable names the ones not built yet."""
    kind = spec.backend.type
    if kind is BackendType.JOB:
        return JobBackend(ref, spec, config, jobs_of_videojob, kube)
    if kind is BackendType.STUB:
        return StubBackend(ref, spec, config, jobs_of_videojob, kube)
    if kind is BackendType.HTTP:
        return HttpBackend(ref, spec, config, kube)
    if kind is BackendType.MANAGED:
        return SageMakerAsyncBackend(ref, spec, config, kube)
    raise BackendUnavailable(f"backend '{kind.value}' not available yet")
