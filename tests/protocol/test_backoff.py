"""The one back-off rule (ejection and reconnecting) and the reconnect rule, clock-free."""

from __future__ import annotations

import pytest

from coterie.protocol.backoff import (
    CONNECT_TIMEOUT,
    RECONNECT_FIRST,
    RECONNECT_MAX,
    Backoff,
    Reconnect,
    dropped_at_once,
)
from coterie.protocol.ejection import EJECT_AFTER, EJECT_FIRST, EJECT_MAX, Ejection


def test_backoff_doubles_to_its_ceiling_and_resets() -> None:
    backoff = Backoff(1.0, 5.0)
    assert [backoff.failed(1.0) for _ in range(5)] == [1.0, 2.0, 4.0, 5.0, 5.0]
    backoff.reset()
    assert backoff.failed(1.0) == 1.0
    fixed = Backoff(2.0, 2.0)  # a ceiling equal to the first delay: a fixed one
    assert [fixed.failed(1.0) for _ in range(3)] == [2.0, 2.0, 2.0]


def test_full_jitter_waits_the_draw_times_the_delay_which_still_doubles() -> None:
    backoff = Backoff(1.0, 8.0)
    draws = [0.5, 0.0, 0.25, 1.0, 0.75, 0.1]
    assert [backoff.failed(d) for d in draws] == [0.5, 0.0, 1.0, 8.0, 6.0, 0.8]
    assert backoff.delay == 8.0  # a short draw does not slow the doubling
    backoff.reset()
    assert backoff.failed(0.5) == 0.5


def test_nodes_that_fail_together_spread_their_retries() -> None:
    """300 nodes lose one server at once: with their draws, no two wait alike."""
    nodes = [Backoff(0.05, 2.0) for _ in range(300)]
    draws = [i / 300 for i in range(300)]  # what random.random() would spread
    for backoff in nodes:
        for _ in range(4):
            backoff.failed(1.0)  # 0.05, 0.1, 0.2, 0.4: the next delay is 0.8
    waits = [b.failed(d) for b, d in zip(nodes, draws, strict=True)]
    assert len(set(waits)) == 300 and min(waits) == 0.0 and max(waits) < 0.8


@pytest.mark.parametrize("draw", [-0.01, 1.01, float("nan")])
def test_a_draw_outside_zero_to_one_is_refused(draw: float) -> None:
    with pytest.raises(ValueError, match=r"within \[0, 1\]"):
        Backoff(1.0, 2.0).failed(draw)


@pytest.mark.parametrize(("first", "most"), [(0.0, 1.0), (2.0, 1.0), (-1.0, 1.0)])
def test_backoff_refuses_nonsense(first: float, most: float) -> None:
    with pytest.raises(ValueError, match="0 < first <= most"):
        Backoff(first, most)


def test_refused_means_gone_and_everything_else_backs_off() -> None:
    rule = Reconnect()
    assert rule.failed("refused", 1.0) is None
    delays = [rule.failed("other", 1.0), rule.failed("auth", 0.5), rule.failed("other", 1.0)]
    assert delays == [RECONNECT_FIRST, RECONNECT_FIRST, 4 * RECONNECT_FIRST]
    for _ in range(10):
        rule.failed("other", 1.0)
    assert rule.failed("other", 1.0) == RECONNECT_MAX
    assert rule.failed("other", 0.25) == RECONNECT_MAX / 4  # jittered
    assert rule.failed("refused", 1.0) is None  # however long it tried


def test_ejection_waits_for_enough_failures_and_spares_the_last_peer() -> None:
    ejection = Ejection()
    health = ejection.record("a")
    for _ in range(EJECT_AFTER - 1):
        ejection.failed(health, 0.0, lambda: True)
    assert health.ejected_until is None
    ejection.failed(health, 0.0, lambda: False)  # the last peer taking work
    assert health.ejected_until is None and ejection.ejections == 0
    ejection.failed(health, 0.0, lambda: True)
    assert health.ejected_until == EJECT_FIRST
    assert ejection.ejected_n == 1 and ejection.ejections == 1
    assert Ejection.is_out(health, EJECT_FIRST - 0.01)
    assert not Ejection.is_out(health, EJECT_FIRST)


def test_ejection_probe_backs_off_on_the_shared_rule_up_to_its_ceiling() -> None:
    ejection = Ejection()
    health = ejection.record("a")
    for _ in range(EJECT_AFTER):
        ejection.failed(health, 0.0, lambda: True)
    assert not Ejection.may_probe(health, EJECT_FIRST - 0.01)
    t, out = EJECT_FIRST, EJECT_FIRST
    for _ in range(8):
        assert Ejection.may_probe(health, t)
        assert not Ejection.may_probe(health, t)  # one probe at a time
        ejection.failed(health, t, lambda: True)  # the probe failed
        out = min(out * 2, EJECT_MAX)
        assert health.ejected_until == t + out
        t += out
    assert out == EJECT_MAX
    ejection.recovered(health)
    assert health.ejected_until is None and health.failures == 0
    assert ejection.ejected_n == 0 and health.backoff.delay == EJECT_FIRST


def test_dropping_an_ejected_record_uncounts_it() -> None:
    ejection = Ejection()
    health = ejection.record("a")
    assert ejection.record("a") is health and ejection.get("b") is None
    assert ejection.get("a") is health
    for _ in range(EJECT_AFTER):
        ejection.failed(health, 0.0, lambda: True)
    ejection.drop("a")
    ejection.drop("a")
    assert ejection.ejected_n == 0 and ejection.get("a") is None
    with pytest.raises(ValueError, match="at least one"):
        Ejection(after=0)


def test_a_link_dropped_at_once_backs_off_and_a_working_one_starts_over() -> None:
    rule = Reconnect()
    # Accepted, then dropped before any frame (a TLS peer refusing our certificate).
    assert [rule.lost(0, 0.01, 1.0) for _ in range(3)] == [
        RECONNECT_FIRST,
        2 * RECONNECT_FIRST,
        4 * RECONNECT_FIRST,
    ]
    assert rule.lost(1, 0.01, 1.0) == 0.0  # it delivered: reconnect at once
    assert rule.lost(0, 0.01, 0.5) == RECONNECT_FIRST / 2  # back-off started over, jittered
    assert rule.lost(0, CONNECT_TIMEOUT, 1.0) == 0.0  # an idle link that lived is no failure
    # A link that worked and that the peer ended cleanly: it is closing, drop the node.
    assert rule.lost(1, 0.01, 1.0, by_peer=True) is None
    assert rule.lost(0, CONNECT_TIMEOUT, 1.0, by_peer=True) is None
    assert rule.lost(0, 0.01, 1.0, by_peer=True) == RECONNECT_FIRST  # dropped at once: back off


@pytest.mark.parametrize(
    ("frames", "lived", "at_once"),
    [(0, 0.0, True), (0, CONNECT_TIMEOUT - 0.001, True), (0, CONNECT_TIMEOUT, False),
     (1, 0.0, False)],
)  # fmt: skip
def test_dropped_at_once(frames: int, lived: float, at_once: bool) -> None:
    assert dropped_at_once(frames, lived) is at_once


def test_ejection_counts_every_peer_it_takes_out() -> None:
    ejection = Ejection(after=1)  # one failure is enough
    for peer in ("a", "b"):
        ejection.failed(ejection.record(peer), 0.0, lambda: True)
    assert ejection.ejected_n == 2 and ejection.ejections == 2
    ejection.recovered(ejection.record("a"))
    assert ejection.ejected_n == 1 and ejection.ejections == 2
