"""The heartbeat's bookkeeping, the standby rule and the liveness settings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from stereo_operator import main
from stereo_operator.config import LivenessConfig, OperatorConfig
from stereo_operator.liveness import (
    Endpoint,
    Heartbeat,
    Target,
    higher_priority_peers,
    watch_only,
)

T0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def stamp(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_a_renewal_waits_until_the_watch_delivers_it_or_a_later_one() -> None:
    clock = Clock()
    beat = Heartbeat(clock)
    assert beat.waiting() == 0  # nothing sent: nothing owed (a fresh or idle operator)
    beat.sent(stamp(0))
    clock.now += 10
    beat.sent(stamp(10))
    clock.now += 5
    assert beat.waiting() == 15
    beat.seen(stamp(0))
    assert beat.waiting() == 5
    beat.seen(stamp(60))  # e.g. another replica's later renewal: the stream is alive
    assert beat.waiting() == 0
    assert beat.report() == {"lastSeenRenewal": stamp(60).isoformat(), "waitingSeconds": 0.0}


def test_an_event_that_comes_before_its_renewal_is_recorded_owes_nothing() -> None:
    clock = Clock()
    beat = Heartbeat(clock)
    beat.seen(stamp(5))
    beat.sent(stamp(5))
    clock.now += 100
    assert beat.waiting() == 0


def test_a_silent_watch_keeps_the_oldest_renewal_waiting() -> None:
    clock = Clock()
    beat = Heartbeat(clock)
    for second in range(0, 100, 10):
        clock.now = 100.0 + second
        beat.sent(stamp(second))
    beat.seen(stamp(-5))  # an old event (the initial listing) changes nothing
    assert beat.waiting() == 90


def test_a_long_silence_is_measured_from_its_first_renewal() -> None:
    clock = Clock()
    beat = Heartbeat(clock)
    for second in range(10_000):  # more renewals than are kept
        clock.now = 100.0 + second
        beat.sent(stamp(second))
    assert beat.waiting() == 9_999
    beat.seen(stamp(9_999))
    assert beat.waiting() == 0


def test_only_live_peers_of_a_higher_priority_make_a_standby() -> None:
    now = T0
    fresh = (now - timedelta(seconds=5)).isoformat()
    stale = (now - timedelta(seconds=120)).isoformat()
    status = {
        "higher": {"priority": 10, "lifetime": 60, "lastseen": fresh},
        "higher-but-dead": {"priority": 20, "lifetime": 60, "lastseen": stale},
        "lower": {"priority": 1, "lifetime": 60, "lastseen": fresh},
        "self": {"priority": 5, "lifetime": 60, "lastseen": fresh},
        "garbage": {"priority": "high", "lastseen": fresh},
        "not-a-peer": None,
    }
    assert higher_priority_peers(status, 5, now) == ["higher"]
    assert higher_priority_peers(status, 10, now) == []


def test_liveness_config_is_validated() -> None:
    config = OperatorConfig.model_validate(
        {"liveness": {"heartbeatSeconds": 2, "timeoutSeconds": 9, "leaseName": "hb"}}
    )
    assert config.liveness == LivenessConfig(
        heartbeat_seconds=2, timeout_seconds=9, lease_name="hb"
    )
    with pytest.raises(ValidationError, match=r"timeoutSeconds \(5\) must exceed"):
        OperatorConfig.model_validate({"liveness": {"heartbeatSeconds": 10, "timeoutSeconds": 5}})
    with pytest.raises(ValidationError, match="leaseName"):
        OperatorConfig.model_validate({"liveness": {"leaseName": "Not A Name"}})


def test_the_heartbeat_lives_in_the_first_served_namespace(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = OperatorConfig()
    assert main.heartbeat_target(config, ["team-a", "team-b"]) == Target(
        "team-a", "stereo-operator-heartbeat"
    )
    monkeypatch.setenv("POD_NAMESPACE", "stereo-system")
    assert main.heartbeat_target(config, []).namespace == "stereo-system"
    settings = main.settings_for(main.build_parser().parse_args(["--standalone"]), config)
    watch_only(settings, Target("ns", "hb"))
    selector = settings.watching.field_selectors["coordination.k8s.io", "leases"]
    assert selector == "metadata.name=hb,metadata.namespace=ns"


def test_the_endpoint_is_a_plain_http_url() -> None:
    assert Endpoint.parse("http://0.0.0.0:8080/healthz") == Endpoint("0.0.0.0", 8080, "/healthz")
    assert Endpoint.parse("http://127.0.0.1:9000") == Endpoint("127.0.0.1", 9000, "/healthz")
    for bad in ("https://0.0.0.0:8080/healthz", "http://0.0.0.0/healthz", "0.0.0.0:8080"):
        with pytest.raises(ValueError, match="must be http://HOST:PORT/PATH"):
            Endpoint.parse(bad)
