"""The router's rules, driven by inputs and a time argument: no loop, no sleeps."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coterie.errors import LinkLostError, QueueFullError, RemoteError, RequestTimeoutError
from coterie.protocol.routing import (
    TIME_EXPLORE_EVERY,
    Drained,
    Fail,
    Outcome,
    Resolve,
    Router,
)
from tests.protocol.helpers import ANY, adv, answers, ok, req, sends

# -- balancing -----------------------------------------------------------------


def test_round_robin_alternates_over_peers() -> None:
    router = Router()
    router.peer_up("a", ANY, 0)
    router.peer_up("b", ANY, 0)
    peers = [sends(router.submit(req(i), 0))[0][0] for i in range(6)]
    assert peers == ["b", "a", "b", "a", "b", "a"]


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


def test_unknown_balance_policy_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown balance policy"):
        Router(balance="random")  # type: ignore[arg-type]


# -- waiting -------------------------------------------------------------------


def test_a_type_nobody_serves_waits_and_its_timeout_says_so() -> None:
    router = Router()
    router.peer_up("a", adv("a", "other"), 0)
    assert router.submit(req(0, "nosuch", timeout=1.0), 0) == []
    assert router.waiting == 1
    (fail,) = answers(router.expire(1.0))
    assert isinstance(fail, Fail) and isinstance(fail.error, RequestTimeoutError)
    assert "no responder serves 'nosuch'" in str(fail.error)
    assert router.waiting == 0


def test_waiting_requests_go_to_the_first_peer_in_order() -> None:
    router = Router(settle=0)
    for i in range(3):
        router.submit(req(i), 0)
    out = router.peer_up("a", ANY, 0)
    assert sends(out) == [("a", b"frame0"), ("a", b"frame1"), ("a", b"frame2")]


def test_backlog_spreads_over_peers_arriving_within_settle() -> None:
    router = Router(settle=0.05)
    for i in range(6):
        router.submit(req(i), 0)
    first = router.peer_up("a", ANY, 1.0)
    assert sends(first) == [("a", b"frame0")]  # the oldest goes at once
    assert router.next_deadline() == pytest.approx(1.05)
    assert router.peer_up("b", ANY, 1.01) == []  # still gathering
    assert router.submit(req(6), 1.02) == []  # a new request queues behind the backlog
    assert router.expire(1.04) == []
    spread = sends(router.expire(1.05))
    assert len(spread) == 6
    assert {p for p, _ in spread} == {"a", "b"}
    assert router.next_deadline() is None


def test_queue_full_refuses_and_keeps_nothing() -> None:
    router = Router(max_waiting=2)
    router.submit(req(0), 0)
    router.submit(req(1), 0)
    with pytest.raises(QueueFullError, match="max_waiting=2"):
        router.submit(req(2, timeout=1.0), 0)
    assert router.pending == 2
    assert router.next_deadline() is None


def test_duplicate_live_id_is_refused() -> None:
    router = Router()
    router.submit(req(0), 0)
    with pytest.raises(ValueError, match="already pending"):
        router.submit(req(0), 0)


# -- answers, exactly once ---------------------------------------------------------


def test_reply_resolves_once_and_a_late_duplicate_is_dropped() -> None:
    router = Router()
    router.peer_up("a", ANY, 0)
    router.submit(req(0), 0)
    (resolved,) = router.reply("a", ok("r0", 42), 0)
    assert isinstance(resolved, Resolve) and resolved.value == 42
    assert router.reply("a", ok("r0", 43), 0) == []
    assert router.late_replies == 1
    assert router.pending == 0


def test_reply_on_another_peer_does_not_match() -> None:
    router = Router()
    router.peer_up("a", ANY, 0)
    router.peer_up("b", ANY, 0)
    ((peer, _),) = sends(router.submit(req(0), 0))
    other = "a" if peer == "b" else "b"
    assert router.reply(other, ok("r0"), 0) == []
    assert len(router.reply(peer, ok("r0"), 0)) == 1


@pytest.mark.parametrize(
    ("error", "failed"),
    [({}, True), ({"message": "m"}, True), ("boom", True), (1, True), (True, True),
     (None, False), (False, False), (0, False), ("", False)],
)  # fmt: skip
def test_error_field_uses_javascript_truthiness(error: Any, failed: bool) -> None:
    router = Router()
    router.peer_up("a", ANY, 0)
    router.submit(req(0), 0)
    (outcome,) = router.reply("a", [error, "v", "r0"], 0)
    assert isinstance(outcome, Fail) is failed
    if failed:
        assert isinstance(outcome, Fail) and isinstance(outcome.error, RemoteError)


def test_reply_without_result_resolves_to_none_and_short_frames_are_dropped() -> None:
    router = Router()
    router.peer_up("a", ANY, 0)
    router.submit(req(0), 0)
    assert router.reply("a", ["r0"], 0) == []
    assert router.reply("a", [[1], "x", ["unhashable"]], 0) == []
    (outcome,) = router.reply("a", [None, "r0"], 0)
    assert outcome == Resolve(outcome.request, None)  # type: ignore[union-attr]


def test_timeout_withdraws_a_waiting_request() -> None:
    router = Router(settle=0)
    router.submit(req(0, timeout=0.5), 10.0)
    assert router.next_deadline() == pytest.approx(10.5)
    assert router.expire(10.49) == []
    (fail,) = router.expire(10.5)
    assert isinstance(fail, Fail) and "waiting for a responder" in str(fail.error)
    # A responder appearing later gets nothing.
    assert router.peer_up("a", ANY, 11.0) == []


def test_timeout_withdraws_an_in_flight_request_and_its_late_reply_is_dropped() -> None:
    router = Router()
    router.peer_up("a", adv("validator"), 0)
    router.submit(req(0, timeout=1.0), 0)
    (fail,) = router.expire(1.0)
    assert isinstance(fail, Fail) and "in flight to validator" in str(fail.error)
    assert router.inflight == 0
    assert router.reply("a", ok("r0"), 1.1) == []


def test_an_answered_request_never_expires() -> None:
    router = Router()
    router.peer_up("a", ANY, 0)
    router.submit(req(0, timeout=1.0), 0)
    router.submit(req(1, timeout=1.0), 0)
    router.reply("a", ok("r0"), 0.5)
    router.reply("a", ok("r1"), 0.5)
    assert router.expire(5.0) == []
    assert router.next_deadline() is None


def test_an_answered_head_does_not_shadow_a_later_deadline() -> None:
    router = Router()
    router.peer_up("a", ANY, 0)
    router.submit(req(0, timeout=1.0), 0)
    router.submit(req(1, timeout=1.0), 0.5)
    router.reply("a", ok("r0"), 0.6)
    assert router.next_deadline() == pytest.approx(1.5)
    assert router.expire(1.2) == []
    (fail,) = router.expire(1.5)
    assert isinstance(fail, Fail) and fail.request.id == "r1"


def test_a_cancelled_request_yields_nothing_more() -> None:
    router = Router()
    router.peer_up("a", ANY, 0)
    router.submit(req(0, timeout=1.0), 0)
    router.submit(req(1, timeout=1.0), 0)
    assert router.cancel("r0") == []
    assert router.cancel("r0") == []
    assert router.reply("a", ok("r0"), 0) == []
    (fail,) = router.expire(2.0)
    assert isinstance(fail, Fail) and fail.request.id == "r1"


def test_deadlines_of_different_timeouts_each_fire_in_time() -> None:
    router = Router()
    router.submit(req(0, timeout=5.0), 0)
    router.submit(req(1, timeout=1.0), 0)
    router.submit(req(2), 0)  # no bound
    assert router.next_deadline() == pytest.approx(1.0)
    assert [o.request.id for o in answers(router.expire(1.0))] == ["r1"]
    assert router.next_deadline() == pytest.approx(5.0)
    assert [o.request.id for o in answers(router.expire(5.0))] == ["r0"]
    assert router.next_deadline() is None
    assert router.pending == 1


# -- failover ------------------------------------------------------------------------


def test_link_lost_resends_in_flight_requests_elsewhere_first() -> None:
    router = Router(balance="pending")
    router.peer_up("a", ANY, 0)
    router.peer_up("b", ANY, 0)
    placed = [sends(router.submit(req(i), 0))[0] for i in range(4)]
    on_a = [frame for peer, frame in placed if peer == "a"]
    assert len(on_a) == 2
    out = router.link_lost("a", 1)
    assert sends(out) == [("b", frame) for frame in on_a]
    assert router.resent == 2
    assert router.peers() == ["b"]
    assert router.inflight_on("b") == 4


def test_requests_of_a_lost_link_go_before_those_already_waiting() -> None:
    router = Router(settle=0)
    router.peer_up("a", adv("a", "t"), 0)
    router.submit(req(0, "t"), 0)
    router.submit(req(1, "u"), 0)  # nobody serves "u" yet: it waits
    router.link_lost("a", 1)
    assert router.waiting == 2
    assert sends(router.peer_up("b", ANY, 2)) == [("b", b"frame0"), ("b", b"frame1")]


def test_link_lost_with_no_other_peer_queues_until_one_comes() -> None:
    router = Router(settle=0)
    router.peer_up("a", ANY, 0)
    router.submit(req(0), 0)
    assert router.link_lost("a", 1) == []
    assert router.waiting == 1
    assert sends(router.peer_up("b", ANY, 2)) == [("b", b"frame0")]


def test_link_lost_fails_retry_false_requests_with_link_lost() -> None:
    router = Router()
    router.peer_up("a", adv("v"), 0)
    router.submit(req(0, retry=False), 0)
    router.submit(req(1), 0)
    out = router.link_lost("a", 1)
    (fail,) = answers(out)
    assert isinstance(fail, Fail) and isinstance(fail.error, LinkLostError)
    assert fail.request.id == "r0"
    assert router.waiting == 1


def test_a_leaving_peer_takes_nothing_new_and_reports_when_drained() -> None:
    router = Router()
    router.peer_up("a", ANY, 0)
    router.peer_up("b", ANY, 0)
    placed = dict(sends(router.submit(req(0), 0)) + sends(router.submit(req(1), 0)))
    assert router.peer_leaving("a") == []  # it holds one request
    assert {sends(router.submit(req(i), 0))[0][0] for i in range(2, 6)} == {"b"}
    held = placed["a"].decode().replace("frame", "r")
    out = router.reply("a", ok(held), 0)
    assert len(out) == 2 and isinstance(out[0], Resolve) and out[1] == Drained("a")


def test_a_leaving_peer_with_nothing_in_flight_drains_at_once() -> None:
    router = Router()
    router.peer_up("a", ANY, 0)
    assert router.peer_leaving("a") == [Drained("a")]
    assert router.peer_leaving("a") == []


def test_a_timeout_on_a_leaving_peer_drains_it() -> None:
    router = Router()
    router.peer_up("a", ANY, 0)
    router.submit(req(0, timeout=1.0), 0)
    router.peer_leaving("a")
    out = router.expire(1.0)
    assert Drained("a") in out and len(answers(out)) == 1


def test_a_returning_peer_takes_work_again() -> None:
    router = Router(settle=0)
    router.peer_up("a", ANY, 0)
    router.peer_leaving("a")
    router.submit(req(0), 0)
    assert router.waiting == 1
    assert sends(router.peer_returned("a", 1)) == [("a", b"frame0")]


def test_a_changed_advertisement_releases_waiting_requests() -> None:
    router = Router(settle=0)
    router.peer_up("a", adv("a", "other"), 0)
    router.submit(req(0, "new"), 0)
    assert sends(router.peer_changed("a", adv("a", "other", "new"), 1)) == [("a", b"frame0")]


def test_close_fails_everything_once() -> None:
    router = Router()
    router.peer_up("a", ANY, 0)
    router.submit(req(0, timeout=1.0), 0)
    router.submit(req(1, "nosuch"), 0)
    router.peer_changed("a", adv("a", "t"), 0)
    out = router.close(RequestTimeoutError("closing"))
    assert sorted(o.request.id for o in answers(out)) == ["r0", "r1"]
    assert router.expire(10) == [] and router.pending == 0


# -- the invariant, under any order of inputs ------------------------------------------

_ops = st.lists(
    st.one_of(
        st.tuples(st.just("submit"), st.sampled_from([None, 0.5, 2.0]), st.booleans()),
        st.tuples(st.just("reply"), st.integers(0, 30), st.sampled_from("abc")),
        st.tuples(st.just("up"), st.sampled_from("abc")),
        st.tuples(st.just("lost"), st.sampled_from("abc")),
        st.tuples(st.just("leave"), st.sampled_from("abc")),
        st.tuples(st.just("back"), st.sampled_from("abc")),
        st.tuples(st.just("cancel"), st.integers(0, 30)),
        st.tuples(st.just("tick"), st.floats(0.0, 1.0)),
    ),
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(_ops, st.sampled_from(["round_robin", "pending", "time"]))
def test_every_request_gets_at_most_one_answer_and_bounded_ones_get_one(
    ops: list[tuple[Any, ...]], balance: Any
) -> None:
    router = Router(balance=balance, settle=0.05)
    now = 0.0
    answered: dict[str, int] = {}
    bounded: set[str] = set()
    cancelled: set[str] = set()
    submitted = 0

    def take(out: list[Outcome]) -> None:
        for o in out:
            if isinstance(o, Resolve | Fail):
                answered[o.request.id] = answered.get(o.request.id, 0) + 1

    for op in ops:
        kind = op[0]
        if kind == "submit":
            r = req(submitted, timeout=op[1], retry=op[2])
            submitted += 1
            if op[1] is not None:
                bounded.add(r.id)
            take(router.submit(r, now))
        elif kind == "reply":
            take(router.reply(op[2], ok(f"r{op[1]}"), now))
        elif kind == "up":
            if op[1] not in router.peers():
                take(router.peer_up(op[1], ANY, now))
        elif kind == "lost":
            take(router.link_lost(op[1], now))
        elif kind == "leave":
            take(router.peer_leaving(op[1]))
        elif kind == "back":
            take(router.peer_returned(op[1], now))
        elif kind == "cancel":
            cancelled.add(f"r{op[1]}")
            take(router.cancel(f"r{op[1]}"))
        else:
            now += op[1]
            take(router.expire(now))
    take(router.expire(now + 10))
    assert all(n == 1 for n in answered.values()), answered
    assert bounded - cancelled <= set(answered) | cancelled
    assert router.next_deadline() is None or router.pending > 0


def test_answered_requests_do_not_pile_up_in_the_bookkeeping() -> None:
    # A backlog of answered entries made expire() stall the loop for tens of ms.
    router = Router()
    router.peer_up("a", ANY, 0)
    router.peer_up("b", ANY, 0)
    for n in range(5000):
        (send,) = router.submit(req(n, timeout=60.0), n / 1000)
        router.reply(send.peer, ok(f"r{n}"), n / 1000)  # type: ignore[union-attr]
    assert router.tracked <= 2
    assert router.expire(10.0) == []


def test_traffic_counts_requests_and_error_replies_per_link() -> None:
    router = Router()
    router.peer_up("a", ANY, 0)
    router.peer_up("b", ANY, 0)
    sent = {i: sends(router.submit(req(i), 0))[0][0] for i in range(5)}
    assert router.traffic() == {"a": (2, 0), "b": (3, 0)}
    on_b = [i for i, peer in sent.items() if peer == "b"]
    router.reply("b", [{"message": "no"}, f"r{on_b[0]}"], 1)  # an error reply
    router.reply("b", ok(f"r{on_b[1]}"), 1)
    router.reply("b", [None, None, "r99"], 1)  # late: no request, not counted
    assert router.traffic() == {"a": (2, 0), "b": (3, 1)}
    # A lost link's requests are resent and count on the link they go to.
    router.link_lost("a", 2)
    assert router.traffic()["b"] == (5, 1)
    router.peer_up("a", ANY, 3)  # a new link counts from zero
    assert router.traffic()["a"] == (0, 0)
