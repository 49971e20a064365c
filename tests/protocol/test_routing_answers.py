"""Each request is answered exactly once: replies, error replies, cancel and close.

The property test drives the router with any order of inputs and checks the
invariant: at most one answer per request, and one for every bounded request.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coterie.errors import RemoteError, RequestTimeoutError
from coterie.protocol.routing import Fail, Outcome, Resolve, Router
from tests.protocol.helpers import ANY, adv, answers, ok, req, sends


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


def test_reply_without_result_resolves_to_none_and_short_frames_are_dropped() -> None:
    router = Router()
    router.peer_up("a", ANY, 0)
    router.submit(req(0), 0)
    assert router.reply("a", ["r0"], 0) == []
    assert router.reply("a", [[1], "x", ["unhashable"]], 0) == []
    (outcome,) = router.reply("a", [None, "r0"], 0)
    assert outcome == Resolve(outcome.request, None)  # type: ignore[union-attr]


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


def test_close_fails_everything_once() -> None:
    router = Router()
    router.peer_up("a", ANY, 0)
    router.submit(req(0, timeout=1.0), 0)
    router.submit(req(1, "nosuch"), 0)
    router.peer_changed("a", adv("a", "t"), 0)
    out = router.close(RequestTimeoutError("closing"))
    assert sorted(o.request.id for o in answers(out)) == ["r0", "r1"]
    assert router.expire(10) == [] and router.pending == 0


def test_close_fails_with_the_given_error_and_frees_the_peers() -> None:
    router = Router()
    router.peer_up("a", ANY, 0)
    router.submit(req(0), 0)
    error = RequestTimeoutError("requester closed")
    (fail,) = router.close(error)
    assert isinstance(fail, Fail) and fail.error is error
    assert fail.request.peer is None
    assert router.inflight_on("a") == 0


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
