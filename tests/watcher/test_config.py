"""Watcher settings: YAML file, environment overrides, and the errors that name the fix."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from stereo_operator.watcher.config import ConfigError, load_config
from stereo_operator.watcher.logs import JsonFormatter
from stereo_operator.watcher.server import TokenStore

YAML = """
roots: [s3://films/ws, gs://films-eu/ws]
maxConcurrency: 8
sqs:
  - queueUrl: https://sqs.us-east-1.amazonaws.com/123456789012/films
    visibilityTimeoutSeconds: 90
pubsub:
  - subscription: projects/p/subscriptions/watcher
webhook:
  tokenFile: /var/run/secrets/webhook/token
http: {port: 9000}
"""


def test_yaml_file_in_camel_case(tmp_path: Path) -> None:
    path = tmp_path / "watcher.yaml"
    path.write_text(YAML)
    config = load_config(path, environ={})
    assert config.roots == ["s3://films/ws", "gs://films-eu/ws"]
    assert config.max_concurrency == 8
    assert config.sqs[0].visibility_timeout_seconds == 90
    assert config.sqs[0].wait_time_seconds == 20
    assert config.pubsub[0].subscription == "projects/p/subscriptions/watcher"
    assert config.webhook.token_file == Path("/var/run/secrets/webhook/token")
    assert config.http.port == 9000
    assert [r.bucket for r in config.storage_roots()] == ["films", "films-eu"]


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    path = tmp_path / "watcher.yaml"
    path.write_text(YAML)
    environ = {
        "STEREO_WATCHER_CONFIG": str(path),
        "STEREO_WATCHER_MAX_CONCURRENCY": "32",
        "STEREO_WATCHER_HTTP__PORT": "9100",
        "STEREO_WATCHER_WEBHOOK__TOKEN_FILE": "/other/token",
        "STEREO_WATCHER_NAMESPACES": "team-a, team-b",
        "STEREO_WATCHER_WEBHOOK_TOKEN": "not a setting",
        "UNRELATED": "x",
    }
    config = load_config(None, environ=environ)
    assert config.max_concurrency == 32
    assert config.http.port == 9100
    assert config.webhook.token_file == Path("/other/token")
    assert config.namespaces == ["team-a", "team-b"]
    assert config.sqs[0].visibility_timeout_seconds == 90  # untouched


def test_environment_only_with_yaml_flow_lists() -> None:
    environ = {
        "STEREO_WATCHER_ROOTS": "[s3://films/ws]",
        "STEREO_WATCHER_SQS": "[{queueUrl: http://127.0.0.1:5000/123/q, waitTimeSeconds: 1}]",
        "STEREO_WATCHER_WEBHOOK__MINIO": "false",
        "STEREO_WATCHER_WEBHOOK__SEAWEEDFS": "false",
    }
    config = load_config(None, environ=environ)
    assert config.sqs[0].wait_time_seconds == 1
    assert not config.webhook.enabled


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({}, "roots"),
        ({"STEREO_WATCHER_ROOTS": "ftp://x/y"}, "unsupported scheme"),
        ({"STEREO_WATCHER_ROOTS": "file:///data"}, "no event source"),
        (
            {
                "STEREO_WATCHER_ROOTS": "s3://films/ws",
                "STEREO_WATCHER_WEBHOOK__MINIO": "false",
                "STEREO_WATCHER_WEBHOOK__SEAWEEDFS": "false",
            },
            "no event source",
        ),
        ({"STEREO_WATCHER_ROOTS": "s3://films/ws", "STEREO_WATCHER_MAX_CONCURENCY": "3"}, "extra"),
        (
            {"STEREO_WATCHER_ROOTS": "s3://films/ws", "STEREO_WATCHER_NAMESPACES": "Bad_NS"},
            "Bad_NS",
        ),
        (
            {
                "STEREO_WATCHER_ROOTS": "s3://films/ws",
                "STEREO_WATCHER_SQS": "[{queueUrl: q, visibilityTimeoutSeconds: 10}]",
            },
            "must exceed retry.queueBudgetSeconds",
        ),
        ({"STEREO_WATCHER_ROOTS": "s3://films/ws", "STEREO_WATCHER_SQS": "[{bad"}, "YAML"),
    ],
)
def test_invalid_settings_are_named(environ: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(None, environ=environ)


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.yaml", environ={})
    (tmp_path / "list.yaml").write_text("- a\n")
    with pytest.raises(ConfigError, match="not a mapping"):
        load_config(tmp_path / "list.yaml", environ={})


def test_token_file_accepts_every_line_and_rotates(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("old-token\nnew-token\n")
    store = TokenStore(token_file, "UNUSED")
    assert store.check("Bearer old-token")
    assert store.check("bearer new-token")
    assert not store.check("Bearer other")
    assert not store.check("Basic bmV3LXRva2Vu")
    assert not store.check(None)
    assert not store.check("Bearer ")
    token_file.write_text("third-token-with-other-length\n")
    store._checked = 0.0  # skip the once-a-second re-read limit
    assert store.check("Bearer third-token-with-other-length")
    assert not store.check("Bearer old-token")


def test_token_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOOK_TOKEN", "s3cr3t")
    assert TokenStore(None, "HOOK_TOKEN").check("Bearer s3cr3t")
    monkeypatch.delenv("HOOK_TOKEN")
    store = TokenStore(None, "HOOK_TOKEN")
    assert not store.configured
    assert not store.check("Bearer ")


def test_json_log_lines_carry_the_context() -> None:
    record = logging.LogRecord("stereo", logging.INFO, __file__, 1, "completion %s", ("ok",), None)
    record.namespace, record.videojob, record.index, record.source = "team-a", "film", 3, "sqs"
    line = json.loads(JsonFormatter().format(record))
    assert line["msg"] == "completion ok"
    assert line["level"] == "INFO"
    assert (line["namespace"], line["videojob"], line["index"], line["source"]) == (
        "team-a",
        "film",
        3,
        "sqs",
    )
