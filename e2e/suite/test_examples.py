"""Each runnable example of examples/videojobs/, applied with kubectl, converts the sample."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from .checks import assert_completions_from_events, assert_output, wait_finished
from .examples import Outputs, runnable_examples
from .kube import Kube
from .media import Sample

pytestmark = pytest.mark.cluster

JOB_TIMEOUT = 540  # all examples share 2 inference slots; under pytest-timeout's 600 s


@pytest.mark.parametrize("example", runnable_examples(), ids=lambda p: p.stem)
def test_example_converts_the_sample(
    example: Path,
    submitted: dict[Path, dict[str, Any]],
    kube: Kube,
    s3: Any,
    namespace: str,
    sample: Sample,
    outputs: Outputs,
    tmp_path: Path,
) -> None:
    manifest = submitted[example]
    name = manifest["metadata"]["name"]
    status = wait_finished(kube, namespace, name, JOB_TIMEOUT)
    assert status["segmentsCompleted"] == status["segmentsTotal"] > 0
    assert_completions_from_events(kube, namespace, name, status["segmentsTotal"])
    outputs.uris[name] = status["outputUri"]
    assert_output(s3, status["outputUri"], manifest, sample.probe, tmp_path)
