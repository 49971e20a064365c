"""Slow start: a newly linked peer's share of requests in flight (coterie.protocol.slowstart)."""

from __future__ import annotations

import pytest

from coterie.protocol.routing import Router
from coterie.protocol.slowstart import SLOW_START_ANSWERS, SlowStart
from tests.protocol.helpers import ANY, ok, req, sends


def test_a_new_peer_holds_one_request_then_one_more_per_answer() -> None:
    slow = SlowStart()
    assert slow.allowance(0) == 1
    assert slow.admits(0, 0) and not slow.admits(0, 1)
    assert slow.allowance(3) == 4
    assert slow.admits(3, 3) and not slow.admits(3, 4)
    assert slow.starting(SLOW_START_ANSWERS - 1)


def test_after_enough_answers_there_is_no_cap() -> None:
    slow = SlowStart(answers=4)
    assert not slow.starting(4)
    assert slow.allowance(4) is None
    assert slow.admits(4, 10_000)


def test_off_and_nonsense() -> None:
    assert SlowStart(answers=0).admits(0, 10_000)
    with pytest.raises(ValueError):
        SlowStart(answers=-1)
    with pytest.raises(ValueError):
        SlowStart(initial=0)


# -- in the router -----------------------------------------------------------------


def _established(router: Router, peer: str, now: float) -> None:
    """``peer`` is up and has answered enough requests to leave slow start."""
    router.peer_up(peer, ANY, now)
    answered, n = 0, 0
    while answered < SLOW_START_ANSWERS:
        n += 1
        (sent,) = sends(router.submit(req(10_000 * len(peer) + n), now))
        router.reply(sent[0], ok(f"r{10_000 * len(peer) + n}"), now)  # every peer answers
        answered += sent[0] == peer


def test_beside_an_established_peer_a_new_one_holds_one_request_per_answer() -> None:
    router = Router()
    _established(router, "good", 0.0)
    router.peer_up("new", ANY, 0.0)
    picked = [sends(router.submit(req(i), 0.0))[0][0] for i in range(10)]
    assert picked.count("new") == 1
    assert router.inflight_on("new") == 1
    new_request = next(i for i, peer in enumerate(picked) if peer == "new")
    router.reply("new", ok(f"r{new_request}"), 0.1)  # it answered one: two may go now
    picked = [sends(router.submit(req(i), 0.1))[0][0] for i in range(10, 20)]
    assert picked.count("new") == 2


def test_a_new_peer_alone_or_among_new_ones_is_not_held_back() -> None:
    router = Router()
    router.peer_up("a", ANY, 0.0)
    assert [sends(router.submit(req(i), 0.0))[0][0] for i in range(5)] == ["a"] * 5
    router.peer_up("b", ANY, 0.0)
    picked = [sends(router.submit(req(i), 0.0))[0][0] for i in range(5, 15)]
    assert picked.count("b") == 5  # round robin: neither has answered yet


def test_a_new_peer_leaves_slow_start_after_enough_answers() -> None:
    router = Router()
    _established(router, "good", 0.0)
    router.peer_up("new", ANY, 0.0)
    answered = 0
    n = 0
    while answered < SLOW_START_ANSWERS:
        (sent,) = sends(router.submit(req(n), 0.0))
        if sent[0] == "new":
            router.reply("new", ok(f"r{n}"), 0.0)
            answered += 1
        n += 1
    picked = [sends(router.submit(req(i), 0.0))[0][0] for i in range(n, n + 20)]
    assert picked.count("new") == 10  # round robin again, nothing held back


def test_a_peer_that_finished_slow_start_keeps_its_standing_across_links() -> None:
    router = Router()
    _established(router, "good", 0.0)
    _established(router, "other1", 0.0)
    router.link_lost("other1", 0.0)
    router.peer_up("other1", ANY, 0.0)  # reconnected: not new
    picked = [sends(router.submit(req(i), 0.0))[0][0] for i in range(10)]
    assert picked.count("other1") == 5
    router.peer_leaving("other1")
    router.link_lost("other1", 0.0)  # gone for good, then back: new again
    router.peer_up("other1", ANY, 0.0)
    picked = [sends(router.submit(req(i), 0.0))[0][0] for i in range(10, 20)]
    assert picked.count("other1") == 1
