"""Max-min fair shares of the cluster-wide cap."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from stereo_operator.fairshare import Demand, fair_shares

T0 = datetime(2030, 1, 1, tzinfo=UTC)


def test_equal_split_between_hungry_videojobs() -> None:
    shares = fair_shares(8, [Demand("a", 100, T0), Demand("b", 100, T0 + timedelta(1))])
    assert shares == {"a": 4, "b": 4}


def test_a_slot_one_cannot_use_goes_to_the_others() -> None:
    shares = fair_shares(8, [Demand("a", 100), Demand("b", 1), Demand("c", 100)])
    assert shares == {"a": 4, "b": 1, "c": 3} or shares == {"a": 3, "b": 1, "c": 4}
    assert sum(shares.values()) == 8


def test_the_odd_slot_goes_to_the_oldest() -> None:
    old, new = Demand("new", 10, T0 + timedelta(hours=1)), Demand("old", 10, T0)
    assert fair_shares(3, [old, new]) == {"new": 1, "old": 2}


def test_fewer_slots_than_videojobs() -> None:
    demands = [Demand(k, 5, T0 + timedelta(seconds=i)) for i, k in enumerate("abc")]
    assert fair_shares(2, demands) == {"a": 1, "b": 1, "c": 0}


def test_one_videojob_alone_gets_what_it_wants() -> None:
    assert fair_shares(16, [Demand("a", 4)]) == {"a": 4}
    assert fair_shares(16, [Demand("a", 40)]) == {"a": 16}


@given(
    st.integers(min_value=0, max_value=50),
    st.lists(st.integers(min_value=0, max_value=30), min_size=1, max_size=8),
)
def test_shares_never_exceed_the_cap_or_the_wants(cap: int, wants: list[int]) -> None:
    demands = [Demand(i, w, T0 + timedelta(seconds=i)) for i, w in enumerate(wants)]
    shares = fair_shares(cap, demands)
    assert sum(shares.values()) == min(cap, sum(wants))
    assert all(0 <= shares[d.key] <= d.wanted for d in demands)
    # Max-min: nobody below another's share unless it got all it wanted.
    for d in demands:
        if shares[d.key] < d.wanted:
            assert all(shares[d.key] >= shares[o.key] - 1 for o in demands)
