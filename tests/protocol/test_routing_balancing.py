"""Which peer a request goes to: round robin, fewest in flight, fastest replies.

Also the filters before any policy: the types a peer responds to, and subsets.
"""

from __future__ import annotations

from itertools import pairwise

import pytest

from coterie.protocol.routing import TIME_EXPLORE_EVERY, TIME_WINDOW, Outcome, Resolve, Router
from tests.protocol.helpers import ANY, adv, answers, ok, place, req, sends


def test_responds_to_filters_peers() -> None:
    router = Router()
    router.peer_up("a", adv("a", "other"), 0)
    router.peer_up("b", adv("b", "t"), 0)
    router.peer_up("c", adv("c", "*"), 0)
    peers = {sends(router.submit(req(i), 0))[0][0] for i in range(6)}
    assert peers == {"b", "c"}


def test_subset_routes_only_to_that_subset() -> None:
    router = Router()
    router.peer_up("a", adv("a", subset="x"), 0)
    router.peer_up("b", adv("b", subset="y"), 0)
    for i in range(4):
        assert sends(router.submit(req(i, subset="y"), 0)) == [("b", f"frame{i}".encode())]


def test_unknown_balance_policy_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown balance policy"):
        Router(balance="random")  # type: ignore[arg-type]


# -- round robin -----------------------------------------------------------------------


def test_round_robin_alternates_over_peers() -> None:
    router = Router()
    router.peer_up("a", ANY, 0)
    router.peer_up("b", ANY, 0)
    peers = [sends(router.submit(req(i), 0))[0][0] for i in range(6)]
    assert peers == ["b", "a", "b", "a", "b", "a"]


def test_round_robin_rotates_in_the_order_peers_came_up() -> None:
    router = Router()
    for peer in "abc":
        router.peer_up(peer, ANY, 0)
    picked = [place(router, i, 0) for i in range(7)]
    order = router.peers()
    for before, after in pairwise(picked):
        assert order.index(after) == (order.index(before) + 1) % len(order)


# -- fewest in flight ------------------------------------------------------------------


def test_pending_balance_picks_fewest_in_flight() -> None:
    router = Router(balance="pending")
    router.peer_up("a", ANY, 0)
    router.peer_up("b", ANY, 0)
    router.peer_up("c", ANY, 0)
    first = [sends(router.submit(req(i), 0))[0][0] for i in range(3)]
    assert sorted(first) == ["a", "b", "c"]
    # Answer both requests on "b" and "c": "a" now holds the most.
    router.reply("b", ok("r" + str(first.index("b"))), 0)
    router.reply("c", ok("r" + str(first.index("c"))), 0)
    nxt = [sends(router.submit(req(10 + i), 0))[0][0] for i in range(2)]
    assert sorted(nxt) == ["b", "c"]
    assert router.inflight_on("a") == 1


def test_pending_balance_sends_to_the_peer_with_fewer_in_flight() -> None:
    router = Router(balance="pending")
    router.peer_up("a", ANY, 0)
    router.peer_up("b", ANY, 0)
    first = place(router, 0, 0)
    second = place(router, 1, 0)
    assert first != second
    router.reply(second, ok("r1"), 0)  # now `second` holds nothing, `first` one
    assert place(router, 2, 0) == second
    assert router.inflight_on(first) == router.inflight_on(second) == 1


# -- fastest replies -------------------------------------------------------------------


def test_time_balance_prefers_the_faster_peer_and_keeps_exploring() -> None:
    router = Router(balance="time")
    router.peer_up("slow", ANY, 0)  # first in order: the fastest must win on merit
    router.peer_up("fast", ANY, 0)
    # Untried peers get a request first, so each is measured.
    first = dict(sends(router.submit(req(0), 0.0)) + sends(router.submit(req(1), 0.0)))
    assert set(first) == {"fast", "slow"}
    by_peer = {peer: frame.decode().replace("frame", "r") for peer, frame in first.items()}
    router.reply("fast", ok(by_peer["fast"]), 0.001)
    router.reply("slow", ok(by_peer["slow"]), 0.5)
    picked = [sends(router.submit(req(i), 1.0))[0][0] for i in range(2, 2 + 3 * TIME_EXPLORE_EVERY)]
    # Every TIME_EXPLORE_EVERY-th request explores, in turn over the peers;
    # the rest go to the fastest.
    assert picked.count("slow") == 1
    assert picked.count("fast") == len(picked) - 1


def test_time_balance_explores_every_nth_request_in_turn() -> None:
    router = Router(balance="time")
    took = {"a": 0.01, "b": 0.05, "c": 0.09}
    for peer in took:
        router.peer_up(peer, ANY, 0)
    picked: list[str] = []
    for n in range(3 * TIME_EXPLORE_EVERY + 2):
        now = n * 0.1
        peer = place(router, n, now)
        picked.append(peer)
        router.reply(peer, ok(f"r{n}"), now + took[peer])
    # Requests 1-3 measure each peer; then the fastest, except every
    # TIME_EXPLORE_EVERY-th request, which goes to the next peer in turn.
    assert picked[:3] == ["a", "b", "c"]
    explored = {n + 1: p for n, p in enumerate(picked) if n >= 3 and p != "a"}
    assert explored == {TIME_EXPLORE_EVERY: "b", 2 * TIME_EXPLORE_EVERY: "c"}


def test_time_balance_uses_the_mean_of_measured_reply_times() -> None:
    # "slow" came up first, so only the measured times can favour "fast";
    # the clock is far from zero, so reply times must be differences.
    router = Router(balance="time")
    router.peer_up("slow", ANY, 100.0)
    router.peer_up("fast", ANY, 100.0)
    assert place(router, 0, 100.0) == "slow"  # unmeasured peers go first
    assert place(router, 1, 100.0) == "fast"
    router.reply("slow", ok("r0"), 100.6)
    router.reply("fast", ok("r1"), 100.1)
    for n in range(2, 6):
        now = 100.0 + n
        assert place(router, n, now) == "fast"
        router.reply("fast", ok(f"r{n}"), now + 0.1)


def test_time_balance_forgets_reply_times_older_than_the_window() -> None:
    router = Router(balance="time")
    router.peer_up("fast", ANY, 0.0)
    router.peer_up("slow", ANY, 0.0)
    assert place(router, 0, 0.0) == "fast"
    assert place(router, 1, 0.0) == "slow"
    router.reply("fast", ok("r0"), 0.25)
    router.reply("slow", ok("r1"), 0.5)
    # Both measurements are stale at 15.5: neither peer is preferred.
    assert place(router, 2, 15.5) == "fast"
    router.reply("fast", ok("r2"), 16.0)  # a fresh 0.5 s on "fast"
    # "slow" has only a stale measurement: it is tried again.
    assert place(router, 3, 16.5) == "slow"
    # A measurement exactly TIME_WINDOW old still counts.
    assert place(router, 4, 16.0 + TIME_WINDOW) == "slow"


def test_time_balance_averages_only_the_most_recent_replies() -> None:
    router = Router(balance="time")
    router.peer_up("a", ANY, 0.0)
    router.submit(req(0), 0.0)
    router.reply("a", ok("r0"), 5.0)  # one very slow reply ...
    for n in range(1, 65):  # ... then 64 fast ones
        now = 5.0 + n * 0.01
        router.submit(req(n), now)
        router.reply("a", ok(f"r{n}"), now + 0.01)
    router.peer_up("b", ANY, 6.0)
    assert place(router, 65, 6.0) == "b"
    router.reply("b", ok("r65"), 6.05)  # "b" answers in 0.05 s, "a" in 0.01 s
    # Only the last replies count: the old outlier no longer slows "a"
    # (with it, "a" would average 0.09 s).
    assert place(router, 66, 6.5) == "a"


def _measured_pair() -> Router:
    router = Router(balance="time", settle=0.05)
    router.peer_up("a", adv("a", "t"), 0.0)
    router.peer_up("b", adv("b", "t"), 0.0)
    for n, peer in enumerate("ab"):
        assert place(router, n, 0.0) == peer
        router.reply(peer, ok(f"r{n}"), 0.1)
    return router


def _queued_then_released(path: str) -> tuple[Router, list[Outcome]]:
    if path == "peer_changed":
        router = _measured_pair()
        assert router.submit(req(9, "u"), 1.0) == []
        return router, router.peer_changed("a", adv("a", "t", "u"), 1.0)
    if path == "peer_returned":
        router = _measured_pair()
        router.peer_leaving("a")
        router.peer_leaving("b")
        assert router.submit(req(9), 1.0) == []
        return router, router.peer_returned("a", 1.0)
    if path == "link_lost":
        router = _measured_pair()
        peer = place(router, 9, 1.0)
        return router, router.link_lost(peer, 1.0)
    if path == "peer_up":
        router = Router(balance="time", settle=0)
        router.submit(req(9), 1.0)
        return router, router.peer_up("a", ANY, 1.0)
    router = Router(balance="time", settle=0.05)  # the settle window ends
    router.submit(req(8), 0.0)
    router.submit(req(9), 0.0)
    (first,) = sends(router.peer_up("a", ANY, 0.95))
    router.peer_up("b", ANY, 0.96)
    assert router.reply(first[0], ok("r8"), 0.97)
    return router, router.expire(1.0)


@pytest.mark.parametrize(
    "path", ["peer_changed", "peer_returned", "link_lost", "peer_up", "expire"]
)
def test_time_balance_measures_requests_released_from_the_queue(path: str) -> None:
    router, out = _queued_then_released(path)
    ((peer, frame),) = sends(out)
    assert frame == b"frame9"
    (resolved,) = answers(router.reply(peer, ok("r9", 9), 1.5))
    assert isinstance(resolved, Resolve) and resolved.value == 9
