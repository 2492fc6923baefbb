"""The replacement rule the watcher applies: S3 sequencers of different lengths compare after
padding the shorter one with zeros on the right (the current Amazon S3 documentation)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stereo_types.segment import (
    CompletionSource,
    SegmentCompletion,
    compare_completions,
    compare_sequencers,
    should_replace_completion,
)

T0 = datetime(2026, 11, 25, 18, 0, tzinfo=UTC)
URI = "s3://films/ws/team-a/film/uid/segments/00000/output.mp4"


def completion(**overrides: Any) -> SegmentCompletion:
    fields: dict[str, Any] = {
        "uri": URI,
        "size": 10,
        "eventTime": T0,
        "source": CompletionSource.SQS,
        "recordedAt": T0,
        **overrides,
    }
    return SegmentCompletion.model_validate(fields)


@pytest.mark.parametrize(
    ("older", "newer"),
    [
        # Equal lengths: plain string order.
        ("0055AED6DCD90281E5", "0055AED6DCD90281E6"),
        # A newer overwrite whose sequencer is shorter: left padding (00...D3 against
        # ...D2FF) would call it older and keep the stale completion.
        ("0066B2D4E1A8F3C7D2FF", "0066B2D4E1A8F3C7D3"),
        # A longer sequencer that extends the shorter one is newer.
        ("0066B2D4E1A8F3C7D2", "0066B2D4E1A8F3C7D201"),
        ("0100", "FF"),  # FF pads to FF00 > 0100; left padding said the opposite
        ("0A", "B"),  # B pads to B0
        ("ab", "AC"),  # case does not matter
    ],
)
def test_sequencers_compare_after_right_padding(older: str, newer: str) -> None:
    assert compare_sequencers(older, newer) < 0
    assert compare_sequencers(newer, older) > 0
    assert should_replace_completion(
        completion(sequencer=older), completion(sequencer=newer, eventTime=T0 - timedelta(hours=1))
    )
    assert not should_replace_completion(
        completion(sequencer=newer), completion(sequencer=older, eventTime=T0 + timedelta(hours=1))
    )


@pytest.mark.parametrize(
    ("a", "b"),
    [("01", "0100"), ("ABC", "abc000"), ("0", "0000"), ("F", "f")],
)
def test_sequencers_equal_after_right_padding_are_the_same_report(a: str, b: str) -> None:
    assert compare_sequencers(a, b) == 0
    assert compare_completions(completion(sequencer=a), completion(sequencer=b)) == 0
    assert not should_replace_completion(completion(sequencer=a), completion(sequencer=b))


def test_the_rest_of_the_rule_is_the_models() -> None:
    # Generations decide first, whatever the sequencers say.
    assert should_replace_completion(
        completion(generation=5, sequencer="FF"), completion(generation=6, sequencer="01")
    )
    # Without sequencers on both sides, eventTime decides.
    assert should_replace_completion(
        completion(sequencer="FF"), completion(eventTime=T0 + timedelta(seconds=1))
    )
    assert not should_replace_completion(completion(), completion())
    # Sequencers of different objects are not comparable: eventTime decides.
    other = completion(
        uri=URI.replace("00000", "00001"), sequencer="01", eventTime=T0 + timedelta(seconds=1)
    )
    assert should_replace_completion(completion(sequencer="FF"), other)
    assert should_replace_completion(None, completion())


completions = st.builds(
    completion,
    generation=st.none() | st.integers(min_value=0, max_value=10),
    sequencer=st.none() | st.from_regex(r"[0-9A-Fa-f]{1,6}", fullmatch=True),
    eventTime=st.integers(min_value=0, max_value=10).map(lambda s: T0 + timedelta(seconds=s)),
)


@settings(deadline=None, max_examples=300)
@given(a=completions, b=completions, c=completions)
def test_the_order_is_antisymmetric_and_transitive(
    a: SegmentCompletion, b: SegmentCompletion, c: SegmentCompletion
) -> None:
    assert compare_completions(a, b) == -compare_completions(b, a)
    assert not (should_replace_completion(a, b) and should_replace_completion(b, a))
    assert not should_replace_completion(a, a)
    # Among sequencer-ordered reports of one object the order is transitive.
    ordered = all(x.generation is None and x.sequencer is not None for x in (a, b, c))
    if ordered and compare_completions(a, b) <= 0 and compare_completions(b, c) <= 0:
        assert compare_completions(a, c) <= 0
