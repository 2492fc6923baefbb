"""The `stub` backend: the job backend's mechanism with the copy engine and no GPU.

For tests and dry runs of the pipeline on clusters without accelerators.
"""

from __future__ import annotations

from stereo_operator.backends.job import JobBackend
from stereo_types.backend import Engine


class StubBackend(JobBackend):
    name = "stub"

    @property
    def engine(self) -> Engine:
        return Engine.COPY

    @property
    def gpus(self) -> int:
        return 0
