"""The chart's Pub/Sub push settings (events.pubsub.delivery push) render a config the
watcher loads: the /events/pubsub endpoint, its OIDC check, the shared token mounted."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from stereo_operator.watcher.config import WatcherConfig, load_config
from tests.chart.conftest import CHART, Helm, documents, find

# The chart suite's fixtures (helm from scripts/tools), used here as they are there.
from tests.chart.conftest import helm as helm
from tests.chart.conftest import tools as tools

GCS = "storage.kind=gcs,storage.bucket=films"
AUDIENCE = "https://watcher.example.com/events/pubsub"
ACCOUNT = "stereo-push@films-project.iam.gserviceaccount.com"


def _render(helm: Helm, *settings: str) -> list[dict[str, Any]]:
    return documents(helm.template("--set", ",".join([GCS, "events.source=pubsub", *settings])))


def _config(docs: list[dict[str, Any]], tmp_path: Path) -> WatcherConfig:
    config_map = find(docs, "ConfigMap", "-watcher")
    path = tmp_path / "config.yaml"
    path.write_text(config_map["data"]["config.yaml"])
    return load_config(path, environ={})


def _mounts(docs: list[dict[str, Any]]) -> dict[str, str]:
    spec = find(docs, "Deployment", "-watcher")["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    return {m["mountPath"]: m["name"] for m in container["volumeMounts"]}


def test_push_with_oidc(helm: Helm, tmp_path: Path) -> None:
    docs = _render(
        helm,
        "events.pubsub.delivery=push",
        f"events.pubsub.push.audience={AUDIENCE}",
        f"events.pubsub.push.serviceAccountEmail={ACCOUNT}",
    )
    config = _config(docs, tmp_path)
    assert config.pubsub == []  # no streaming pull
    webhook = config.webhook
    assert (webhook.pubsub, webhook.minio, webhook.seaweedfs) == (True, False, False)
    assert webhook.pubsub_oidc is not None
    assert (webhook.pubsub_oidc.audience, webhook.pubsub_oidc.service_account_email) == (
        AUDIENCE,
        ACCOUNT,
    )
    # The shared token is accepted too (and is what a test push can use).
    assert webhook.token_file is not None
    assert _mounts(docs)[str(webhook.token_file.parent)] == "webhook-token"
    assert find(docs, "Secret", "-webhook-token")["data"]["token"]
    assert "spool" not in _mounts(docs).values()


def test_push_with_the_shared_token_only(helm: Helm, tmp_path: Path) -> None:
    config = _config(_render(helm, "events.pubsub.delivery=push"), tmp_path)
    assert config.webhook.pubsub and config.webhook.pubsub_oidc is None
    assert config.webhook.needs_token and config.webhook.token_file is not None


def test_pull_is_the_default_and_needs_a_subscription(helm: Helm, tmp_path: Path) -> None:
    docs = _render(helm, "events.pubsub.subscription=projects/p/subscriptions/watcher")
    config = _config(docs, tmp_path)
    assert [s.subscription for s in config.pubsub] == ["projects/p/subscriptions/watcher"]
    assert not config.webhook.enabled
    assert not any(d["kind"] == "Secret" and "webhook" in d["metadata"]["name"] for d in docs)
    refused = helm.run("template", "stereo", str(CHART), "--set", f"{GCS},events.source=pubsub")
    assert refused.returncode != 0 and "subscription" in refused.stderr


@pytest.mark.parametrize(
    "bad", ["events.pubsub.delivery=poll", "events.pubsub.push.serviceAccountEmail=nobody"]
)
def test_schema_refuses_bad_push_values(helm: Helm, bad: str) -> None:
    result = helm.run(
        "template",
        "stereo",
        str(CHART),
        "--set",
        f"{GCS},events.source=pubsub,events.pubsub.delivery=push,{bad}",
    )
    assert result.returncode != 0
    assert "events" in result.stderr


@pytest.mark.parametrize("audience", [AUDIENCE, ""])
def test_notes_say_where_pubsub_pushes(helm: Helm, audience: str) -> None:
    settings = f"{GCS},events.source=pubsub,events.pubsub.delivery=push"
    settings += f",events.pubsub.push.audience={audience}" if audience else ""
    result = helm.run(
        "install",
        "stereo",
        str(CHART),
        "--dry-run=client",
        "-n",
        "stereo-system",
        "--set",
        settings,
    )
    assert result.returncode == 0, result.stderr
    notes = result.stdout.split("NOTES:", 1)[1]
    assert "/events/pubsub" in notes
    if audience:
        assert f"--push-auth-token-audience {AUDIENCE}" in notes
    else:
        assert "/events/pubsub?token=<token>" in notes
