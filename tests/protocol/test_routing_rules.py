"""More router rules, each pinned by its outcomes (found by mutation testing).

Time is an argument: no loop, no sleeps. Every test asserts what a caller
sees (where a request goes, what an answer carries, what a counter says).
"""

from __future__ import annotations

from itertools import pairwise

import pytest

from coterie.errors import LinkLostError, RemoteError, RequestTimeoutError
from coterie.protocol.routing import (
    TIME_EXPLORE_EVERY,
    TIME_WINDOW,
    Fail,
    Outcome,
    Resolve,
    Router,
)
from tests.protocol.helpers import ANY, adv, answers, ok, req, sends


def place(router: Router, n: int, now: float, type_: str = "t") -> str:
    """Submit request ``n`` and return the peer it was sent to."""
    ((peer, _),) = sends(router.submit(req(n, type_), now))
    return peer


# -- construction ---------------------------------------------------------------


def test_bounds_may_be_zero_but_not_negative() -> None:
    router = Router(max_waiting=0, settle=0)
    router.peer_up("a", ANY, 0)
    assert sends(router.submit(req(0), 0)) == [("a", b"frame0")]
    with pytest.raises(ValueError, match="must not be negative"):
        Router(max_waiting=-1)
    with pytest.raises(ValueError, match="must not be negative"):
        Router(settle=-0.01)


def test_a_peer_cannot_come_up_twice() -> None:
    router = Router()
    router.peer_up("a", ANY, 0)
    with pytest.raises(ValueError, match="peer 'a' is already up"):
        router.peer_up("a", ANY, 1)


def test_request_repr_names_it_and_where_it_is() -> None:
    router = Router()
    request = req(0, "price")
    assert repr(request) == "<Request r0 'price' on queue>"
    router.peer_up("a", ANY, 0)
    router.submit(request, 0)
    assert repr(request) == "<Request r0 'price' on a>"


# -- balancing --------------------------------------------------------------------


def test_round_robin_rotates_in_the_order_peers_came_up() -> None:
    router = Router()
    for peer in "abc":
        router.peer_up(peer, ANY, 0)
    picked = [place(router, i, 0) for i in range(7)]
    order = router.peers()
    for before, after in pairwise(picked):
        assert order.index(after) == (order.index(before) + 1) % len(order)


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


# -- answers ------------------------------------------------------------------------


def test_inflight_on_an_unknown_peer_is_zero() -> None:
    router = Router()
    router.peer_up("a", ANY, 0)
    router.submit(req(0), 0)
    assert router.inflight_on("a") == 1
    assert router.inflight_on("nobody") == 0


def test_unmatched_replies_are_each_counted_once() -> None:
    router = Router()
    router.peer_up("a", ANY, 0)
    router.submit(req(0), 0)
    assert router.reply("a", ok("r-unknown"), 0) == []
    assert router.reply("nobody", ok("r0"), 0) == []
    assert router.late_replies == 2
    assert len(router.reply("a", ok("r0"), 0)) == 1
    assert router.reply("a", ok("r0"), 0) == []
    assert router.late_replies == 3


def test_an_answer_carries_the_request_and_leaves_it_on_no_peer() -> None:
    router = Router()
    router.peer_up("a", ANY, 0)
    request = req(0)
    router.submit(request, 0)
    (resolved,) = router.reply("a", ok("r0", {"x": 1}), 0)
    assert resolved == Resolve(request, {"x": 1})
    assert request.peer is None and request.done


def test_an_error_reply_fails_with_the_remote_payload() -> None:
    router = Router()
    router.peer_up("a", ANY, 0)
    router.submit(req(0), 0)
    payload = {"message": "card declined", "name": "ValueError"}
    (fail,) = router.reply("a", [payload, "r0"], 0)
    assert isinstance(fail, Fail) and isinstance(fail.error, RemoteError)
    assert fail.error.payload == payload
    assert (fail.error.message, fail.error.name) == ("card declined", "ValueError")
    assert fail.request.peer is None


def test_a_timed_out_request_in_flight_is_on_no_peer() -> None:
    router = Router()
    router.peer_up("a", ANY, 0)
    router.submit(req(0, timeout=1.0), 0)
    (fail,) = answers(router.expire(1.0))
    assert isinstance(fail, Fail)
    assert fail.request.peer is None


def test_close_fails_with_the_given_error_and_frees_the_peers() -> None:
    router = Router()
    router.peer_up("a", ANY, 0)
    router.submit(req(0), 0)
    error = RequestTimeoutError("requester closed")
    (fail,) = router.close(error)
    assert isinstance(fail, Fail) and fail.error is error
    assert fail.request.peer is None
    assert router.inflight_on("a") == 0


def test_timeout_message_names_the_peer_or_its_id() -> None:
    router = Router()
    router.peer_up("a", adv(None), 0)  # advertises no name
    router.submit(req(0, timeout=1.0), 0)
    (fail,) = answers(router.expire(1.0))
    assert isinstance(fail, Fail)
    assert str(fail.error).endswith("in flight to a")


@pytest.mark.parametrize(("name", "shown"), [("renamed", "renamed"), (None, "a")])
def test_a_changed_advertisement_renames_the_peer(name: str | None, shown: str) -> None:
    router = Router()
    router.peer_up("a", adv("first"), 0)
    router.peer_changed("a", adv(name), 0)
    router.submit(req(0, timeout=1.0), 0)
    (fail,) = answers(router.expire(1.0))
    assert isinstance(fail, Fail)
    assert str(fail.error).endswith(f"in flight to {shown}")


def test_a_type_served_only_by_a_leaving_peer_times_out_as_waiting() -> None:
    router = Router()
    router.peer_up("a", adv("a", "t"), 0)
    router.peer_leaving("a")
    router.submit(req(0, timeout=1.0), 0)
    (fail,) = answers(router.expire(1.0))
    assert isinstance(fail, Fail)
    assert str(fail.error).endswith("timed out waiting for a responder")


# -- peers arriving ------------------------------------------------------------------


def test_a_new_peer_beside_a_working_one_takes_the_whole_backlog_at_once() -> None:
    router = Router(settle=0.05)
    router.peer_up("a", adv("a", "x"), 0)
    for n in range(3):
        assert router.submit(req(n, "y"), 0) == []
    out = router.peer_up("b", adv("b", "y"), 1.0)
    assert sends(out) == [("b", b"frame0"), ("b", b"frame1"), ("b", b"frame2")]
    assert router.next_deadline() is None


def test_the_first_peer_after_none_takes_only_the_oldest_of_two() -> None:
    router = Router(settle=0.05)
    router.submit(req(0), 0)
    router.submit(req(1), 0)
    assert sends(router.peer_up("a", ANY, 1.0)) == [("a", b"frame0")]
    assert router.waiting == 1
    assert sends(router.expire(1.05)) == [("a", b"frame1")]


def test_changes_during_a_settle_window_do_not_release_the_backlog_early() -> None:
    router = Router(settle=0.05)
    router.peer_up("old", adv("old", "x"), 0)
    router.peer_leaving("old")
    for n in range(3):
        router.submit(req(n), 0)
    assert sends(router.peer_up("a", ANY, 1.0)) == [("a", b"frame0")]
    assert router.peer_changed("old", adv("old", "t"), 1.01) == []
    assert router.peer_returned("old", 1.02) == []
    assert router.waiting == 2
    assert len(sends(router.expire(1.05))) == 2


# -- failover ---------------------------------------------------------------------------


def test_retried_counts_every_resend_over_link_losses() -> None:
    router = Router(settle=0)
    router.peer_up("a", ANY, 0)
    router.submit(req(0), 0)
    router.link_lost("a", 1)
    router.peer_up("b", ANY, 2)
    router.link_lost("b", 3)
    assert router.resent == 2


def test_link_lost_error_names_the_peer_the_request_and_the_option() -> None:
    router = Router()
    router.peer_up("a", adv("validator"), 0)
    router.submit(req(0, retry=False), 0)
    (fail,) = answers(router.link_lost("a", 1))
    assert isinstance(fail, Fail)
    assert isinstance(fail.error, LinkLostError)
    message = str(fail.error)
    assert message.startswith("link to validator was lost with request r0")
    assert "retry=False" in message
    assert fail.request.peer is None
