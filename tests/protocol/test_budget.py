"""The one token bucket: a burst at once, then a steady rate, time by argument."""

from __future__ import annotations

import pytest

from coterie.protocol.budget import TokenBucket
from coterie.protocol.nodes import ReplyBudget


def test_a_burst_then_the_rate() -> None:
    bucket = TokenBucket(rate=2.0, burst=3)
    assert [bucket.take(0.0) for _ in range(4)] == [True, True, True, False]
    assert not bucket.take(0.25)  # half a token
    assert bucket.take(0.5)
    assert not bucket.take(0.5)
    assert bucket.refused == 3


def test_a_long_pause_refills_only_up_to_the_burst() -> None:
    bucket = TokenBucket(rate=100.0, burst=2)
    assert bucket.take(0.0) and bucket.take(0.0)
    assert [bucket.take(3600.0) for _ in range(3)] == [True, True, False]


def test_a_flood_gets_the_burst_and_the_rate() -> None:
    bucket = TokenBucket(rate=10.0, burst=5)
    taken = sum(bucket.take(i / 1000) for i in range(1000))  # 1000 takes over one second
    assert 5 + 9 <= taken <= 5 + 10
    assert bucket.refused == 1000 - taken


@pytest.mark.parametrize(("rate", "burst"), [(0.0, 1), (-1.0, 1), (1.0, 0), (float("nan"), 1)])
def test_nonsense_is_refused_plainly(rate: float, burst: int) -> None:
    with pytest.raises(ValueError, match="rate > 0 and burst >= 1"):
        TokenBucket(rate, burst)


def test_the_reply_budget_is_the_bucket_with_its_defaults() -> None:
    budget = ReplyBudget()
    assert isinstance(budget, TokenBucket) and (budget.rate, budget.burst) == (10.0, 5)
