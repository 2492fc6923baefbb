"""stereo-infer reaches the store the way the Helm chart configures the Jobs: the endpoint,
region and path-style addressing from STEREO_STORAGE_CONFIG, the keys from the environment
(the chart's storage Secret as envFrom). Against a real SeaweedFS."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from stereo_infer.errors import BadInputError
from stereo_infer.io import STORAGE_CONFIG_ENV, fetch_input, publish_output, storage_config
from tests.servers import SeaweedFS

BUCKET = "jobs"


@pytest.fixture(scope="module")
def seaweedfs() -> Iterator[SeaweedFS]:
    with SeaweedFS(buckets=[BUCKET]) as server:
        yield server


@pytest.fixture
def chart_env(seaweedfs: SeaweedFS, monkeypatch: pytest.MonkeyPatch) -> None:
    """What a Job's container gets from the chart, and nothing that would make boto3 find
    the store without STEREO_STORAGE_CONFIG."""
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", seaweedfs.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", seaweedfs.secret_key)
    config = {"endpoint_url": seaweedfs.s3_endpoint, "region": "us-east-1", "path_style": True}
    monkeypatch.setenv(STORAGE_CONFIG_ENV, json.dumps(config))


def test_round_trip_through_the_configured_store(
    chart_env: None, seaweedfs: SeaweedFS, tmp_path: Path
) -> None:
    local = tmp_path / "segment.mp4"
    local.write_bytes(b"converted segment")
    uri = f"s3://{BUCKET}/ws/ns/job/segments/00000/output.mp4"
    publish_output(local, uri)
    head = seaweedfs.s3_client().head_object(Bucket=BUCKET, Key=uri.split("/", 3)[3])
    assert head["ContentLength"] == len(b"converted segment")
    fetched = fetch_input(uri, tmp_path / "download")
    assert fetched.read_bytes() == b"converted segment"


def test_the_config_is_what_reaches_the_store(
    chart_env: None, seaweedfs: SeaweedFS, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = storage_config()
    assert config is not None
    assert config.endpoint_url == seaweedfs.s3_endpoint
    assert config.path_style is True
    monkeypatch.delenv(STORAGE_CONFIG_ENV)
    assert storage_config() is None


@pytest.mark.parametrize(
    ("raw", "named"),
    [
        ("{not json", "json"),
        ('{"endpoint": "http://x"}', "endpoint"),
        ('{"path_style": "sometimes"}', "path_style"),
    ],
)
def test_a_broken_config_is_bad_input_naming_the_problem(
    raw: str, named: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(STORAGE_CONFIG_ENV, raw)
    with pytest.raises(BadInputError, match=STORAGE_CONFIG_ENV) as caught:
        fetch_input(f"s3://{BUCKET}/a.mp4", tmp_path)
    assert named in str(caught.value).lower()
