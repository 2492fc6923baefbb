"""The Pub/Sub push endpoint in-process, no cluster: its authentication (the shared token,
and OIDC tokens signed with local keys and verified by google-auth against the certificates
a local server publishes) and its answers (2xx only once a message is applied or ignored)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from stereo_operator.watcher.app import Watcher
from stereo_operator.watcher.apply import Applier, Delivery
from stereo_operator.watcher.config import (
    ConfigError,
    PubSubOidcConfig,
    WatcherConfig,
    WebhookConfig,
    load_config,
)
from stereo_operator.watcher.kube import KubeClient
from stereo_operator.watcher.metrics import WatcherMetrics
from stereo_operator.watcher.oidc import (
    CachingRequest,
    CertsUnavailable,
    InvalidToken,
    OidcVerifier,
    looks_like_jwt,
)
from stereo_operator.watcher.server import HttpServer, TokenStore
from stereo_types.layout import StorageRoot
from tests.servers import free_port

from . import payloads as p
from .oidc_keys import PUSH_ACCOUNT, SigningKeys

AUDIENCE = "https://watcher.example.com/events/pubsub"
TOKEN = "push-shared-token"
SOURCE = "pubsub-push"
# An object outside the root: applied as "ignored" without an API call.
ELSEWHERE = "other/notes.txt"


@pytest.fixture
def keys() -> Iterator[SigningKeys]:
    keys = SigningKeys()
    keys.add("key-1")
    yield keys
    keys.close()


def _oidc(keys: SigningKeys, **overrides: Any) -> PubSubOidcConfig:
    fields: dict[str, Any] = {
        "audience": AUDIENCE,
        "serviceAccountEmail": PUSH_ACCOUNT,
        "certsUrl": keys.certs_url,
        **overrides,
    }
    return PubSubOidcConfig.model_validate(fields)


def unreachable() -> KubeClient:
    return KubeClient(f"http://127.0.0.1:{free_port()}", None, lambda: None, timeout=1.0)


class Push:
    def __init__(self, server: HttpServer, metrics: WatcherMetrics) -> None:
        self.server = server
        self.metrics = metrics
        self.url = f"http://127.0.0.1:{server.port}/events/pubsub"

    async def post(
        self, body: Any, bearer: str | None = None, query: str = ""
    ) -> tuple[int, dict[str, Any]]:
        headers = {"Content-Type": "application/json"}
        if bearer is not None:
            headers["Authorization"] = f"Bearer {bearer}"
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        async with (
            aiohttp.ClientSession() as session,
            session.post(self.url + query, data=data, headers=headers) as response,
        ):
            return response.status, await response.json()

    def errors(self, reason: str) -> float:
        return float(self.metrics.errors.labels(SOURCE, reason)._value.get())


@asynccontextmanager
async def push_endpoint(
    tmp_path: Path, oidc: PubSubOidcConfig | None = None, token: str | None = TOKEN
) -> AsyncIterator[Push]:
    token_file = None
    if token is not None:
        token_file = tmp_path / "token"
        token_file.write_text(token + "\n")
    config = WebhookConfig(
        minio=False,
        seaweedfs=False,
        pubsub=True,
        pubsub_oidc=oidc,
        token_file=token_file,
        token_env="STEREO_TEST_UNSET_TOKEN",
        retry_budget_seconds=0,
    )
    metrics = WatcherMetrics()
    kube = unreachable()
    applier = Applier(kube, [StorageRoot.parse("gs://films/ws")])
    delivery = Delivery(applier, metrics, max_concurrency=4, initial_backoff=0.05)
    server = HttpServer(
        config,
        delivery,
        metrics,
        TokenStore(config.token_file, config.token_env),
        lambda: (True, {}),
        oidc=OidcVerifier.from_config(oidc) if oidc is not None else None,
    )
    await server.start("127.0.0.1", 0)
    try:
        yield Push(server, metrics)
    finally:
        await server.stop()
        await kube.close()


def _body(key: str = ELSEWHERE, *, none: bool = False) -> dict[str, Any]:
    if none:
        return p.pubsub_push_body(p.gcs_attributes_without_payload(name=key), b"")
    return p.pubsub_push_body(p.gcs_attributes(name=key), p.gcs_data(name=key))


# --- OIDC ----------------------------------------------------------------------------------------


def test_oidc_token_of_the_push_account_is_accepted_and_keys_are_cached(
    keys: SigningKeys, tmp_path: Path
) -> None:
    async def run() -> list[tuple[int, dict[str, Any]]]:
        async with push_endpoint(tmp_path, _oidc(keys), token=None) as push:
            token = keys.token("key-1", AUDIENCE)
            return [await push.post(_body(), token) for _ in range(3)]

    answers = asyncio.run(run())
    assert [status for status, _ in answers] == [200, 200, 200]
    assert answers[0][1] == {
        "received": 1,
        "applied": 0,
        "duplicates": 0,
        "ignored": 1,
        "rejected": 0,
    }
    assert keys.fetches == 1  # Cache-Control max-age honoured


@pytest.mark.parametrize(
    ("case", "claims"),
    [
        ("other audience", {"aud": "https://elsewhere.example.com/push"}),
        ("other account", {"email": "intruder@films-project.iam.gserviceaccount.com"}),
        ("unverified email", {"email_verified": False}),
        ("no email", {"email": None}),
        ("other issuer", {"iss": "https://evil.example.com"}),
        # Times as seconds from the moment the test runs ("_in"), not from collection: a
        # long suite runs this test many minutes after collecting it.
        ("expired", {"exp_in": -600, "iat_in": -4200}),
        ("issued in the future", {"iat_in": 600}),
        ("forged signature", {"signed_by": "forger"}),
        ("unpublished key", {"kid": "key-unknown"}),
    ],
)
def test_oidc_tokens_that_must_be_refused(
    keys: SigningKeys, tmp_path: Path, case: str, claims: dict[str, Any]
) -> None:
    keys.add("forger", publish=False)
    keys.add("key-unknown", publish=False)
    kid = claims.pop("kid", "key-1")
    now = int(time.time())
    claims = {
        name.removesuffix("_in"): now + value if name.endswith("_in") else value
        for name, value in claims.items()
    }

    async def run() -> tuple[int, dict[str, Any], float]:
        async with push_endpoint(tmp_path, _oidc(keys), token=None) as push:
            token = keys.token(kid, claims.pop("aud", AUDIENCE), **claims)
            status, answer = await push.post(_body(), token)
            return status, answer, push.errors("unauthorized")

    status, answer, unauthorized = asyncio.run(run())
    assert (status, unauthorized) == (401, 1), (case, answer)
    assert answer["error"].startswith("unauthorized")


def test_without_an_expected_account_any_google_signed_token_for_the_audience(
    keys: SigningKeys, tmp_path: Path
) -> None:
    async def run() -> tuple[int, int]:
        async with push_endpoint(
            tmp_path, _oidc(keys, serviceAccountEmail=None), token=None
        ) as push:
            other = keys.token("key-1", AUDIENCE, email="another@example.iam.gserviceaccount.com")
            wrong_audience = keys.token("key-1", "https://other.example.com/")
            return (await push.post(_body(), other))[0], (await push.post(_body(), wrong_audience))[
                0
            ]

    assert asyncio.run(run()) == (200, 401)


def test_a_new_signing_key_is_fetched_once(keys: SigningKeys, tmp_path: Path) -> None:
    async def run() -> list[int]:
        async with push_endpoint(tmp_path, _oidc(keys), token=None) as push:
            statuses = [(await push.post(_body(), keys.token("key-1", AUDIENCE)))[0]]
            keys.add("key-2")  # Google rotates: the cached answer does not know key-2 yet
            statuses.append((await push.post(_body(), keys.token("key-2", AUDIENCE)))[0])
            keys.add("key-3")  # a third key right after: not fetched again so soon
            statuses.append((await push.post(_body(), keys.token("key-3", AUDIENCE)))[0])
            return statuses

    assert asyncio.run(run()) == [200, 200, 401]
    assert keys.fetches == 2


def test_keys_that_cannot_be_fetched_mean_retry_not_refusal(
    keys: SigningKeys, tmp_path: Path
) -> None:
    keys.failing = True

    async def run() -> tuple[int, float, float]:
        async with push_endpoint(tmp_path, _oidc(keys), token=None) as push:
            status, _ = await push.post(_body(), keys.token("key-1", AUDIENCE))
            return status, push.errors("oidc-keys-unavailable"), push.errors("unauthorized")

    assert asyncio.run(run()) == (503, 1, 0)


def test_verifier_returns_the_claims(keys: SigningKeys) -> None:
    verifier = OidcVerifier(AUDIENCE, service_account_email=PUSH_ACCOUNT, certs_url=keys.certs_url)
    claims = verifier.verify(keys.token("key-1", AUDIENCE))
    assert (claims["email"], claims["aud"]) == (PUSH_ACCOUNT, AUDIENCE)
    with pytest.raises(InvalidToken, match="audience"):
        verifier.verify(keys.token("key-1", "https://other.example.com/"))
    down = OidcVerifier(AUDIENCE, certs_url=f"http://127.0.0.1:{free_port()}/certs")
    with pytest.raises(CertsUnavailable):
        down.verify(keys.token("key-1", AUDIENCE))
    assert looks_like_jwt(keys.token("key-1", AUDIENCE))
    assert not looks_like_jwt("push-shared-token")


def test_cache_control_max_age(keys: SigningKeys) -> None:
    now = [1000.0]
    request = CachingRequest(clock=lambda: now[0])
    assert request(keys.certs_url).status == 200
    now[0] += 3599
    request(keys.certs_url)
    assert keys.fetches == 1
    now[0] += 2  # past max-age=3600
    request(keys.certs_url)
    assert keys.fetches == 2


# --- the shared token ---------------------------------------------------------------------------


def test_shared_token_as_header_or_query_parameter(keys: SigningKeys, tmp_path: Path) -> None:
    async def run() -> list[int]:
        async with push_endpoint(tmp_path, _oidc(keys)) as push:
            return [
                (await push.post(_body(), TOKEN))[0],
                (await push.post(_body(), None, f"?token={TOKEN}"))[0],
                (await push.post(_body(), "wrong"))[0],
                (await push.post(_body(), None, "?token=wrong"))[0],
                (await push.post(_body(), None))[0],
                # With OIDC configured, a valid token works beside the shared one.
                (await push.post(_body(), keys.token("key-1", AUDIENCE)))[0],
            ]

    assert asyncio.run(run()) == [200, 200, 401, 401, 401, 200]


def test_shared_token_only(tmp_path: Path, keys: SigningKeys) -> None:
    async def run() -> list[int]:
        async with push_endpoint(tmp_path) as push:
            return [
                (await push.post(_body(), None, f"?token={TOKEN}"))[0],
                # A Google token is no use when OIDC is not configured.
                (await push.post(_body(), keys.token("key-1", AUDIENCE)))[0],
            ]

    assert asyncio.run(run()) == [200, 401]


# --- answers --------------------------------------------------------------------------------------


def test_answers_redeliver_only_what_can_succeed_later(tmp_path: Path) -> None:
    output = f"ws/team-a/film/{p.UID}/segments/00003/output.mp4"

    async def run() -> dict[str, tuple[int, dict[str, Any]]]:
        async with push_endpoint(tmp_path) as push:
            unreadable = p.pubsub_push_body(p.gcs_attributes(name=ELSEWHERE), b"<html>")
            answers = {
                "not a push body": await push.post(b"{", TOKEN),
                "unreadable message": await push.post(unreadable, TOKEN),
                "deletion": await push.post(
                    p.pubsub_push_body(p.gcs_attributes(event="OBJECT_DELETE"), b""), TOKEN
                ),
                "no payload, not an output": await push.post(_body(none=True), TOKEN),
                # A segment output while the API server is away: redeliver.
                "api server away": await push.post(_body(output), TOKEN),
            }
            push.server.draining = True
            answers["shutting down"] = await push.post(_body(), TOKEN)
            assert push.errors("malformed") == 2
            assert push.errors("api-unavailable") >= 1
            return answers

    answers = asyncio.run(run())
    assert answers["not a push body"][0] == 400
    assert answers["unreadable message"] == (200, {"received": 1, "malformed": 1})
    assert answers["deletion"][0] == 200 and answers["deletion"][1]["ignored"] == 1
    assert answers["no payload, not an output"][0] == 200
    assert answers["api server away"][0] == 503
    assert answers["shutting down"][0] == 503


# --- configuration -------------------------------------------------------------------------------


def test_push_settings(tmp_path: Path) -> None:
    config = load_config(
        None,
        environ={
            "STEREO_WATCHER_ROOTS": "gs://films/ws",
            "STEREO_WATCHER_WEBHOOK": (
                "{minio: false, seaweedfs: false, pubsub: true, "
                f"pubsubOidc: {{audience: '{AUDIENCE}', serviceAccountEmail: {PUSH_ACCOUNT}}}}}"
            ),
        },
    )
    oidc = config.webhook.pubsub_oidc
    assert oidc is not None
    assert (oidc.audience, oidc.service_account_email) == (AUDIENCE, PUSH_ACCOUNT)
    assert oidc.certs_url == "https://www.googleapis.com/oauth2/v1/certs"
    assert config.webhook.enabled and not config.webhook.needs_token
    # OIDC alone needs no shared token.
    kube = unreachable()
    Watcher(config, kube=kube)
    asyncio.run(kube.close())
    shared_only = config.model_copy(
        update={"webhook": config.webhook.model_copy(update={"pubsub_oidc": None})}
    )
    with pytest.raises(ConfigError, match="no bearer token"):
        Watcher(shared_only, kube=unreachable())
    with pytest.raises(ConfigError, match="pubsub"):
        load_config(
            None,
            environ={
                "STEREO_WATCHER_ROOTS": "gs://films/ws",
                "STEREO_WATCHER_WEBHOOK__PUBSUB_OIDC": f"{{audience: '{AUDIENCE}'}}",
            },
        )
    assert isinstance(config, WatcherConfig)
