"""A handler error with ``code: "retryable"``: tried again elsewhere, after a back-off, in bound.

The router is driven with ``balance="pending"``, which (all peers idle) picks
the first peer every time: without the "never the same node twice in a row"
rule every retry would go back to the node that just asked for it.
"""

from __future__ import annotations

from typing import Any

import pytest

from coterie.errors import RemoteError, RequestTimeoutError
from coterie.protocol.requester import RequesterProtocol
from coterie.protocol.routing import RETRY_FIRST, RETRY_MAX, Fail, Resolve, Router, Send
from tests.protocol.helpers import ANY, answers, ok, req, sends


def retryable(request_id: str, message: str = "pool full") -> list[Any]:
    """A reply whose handler raised ``Retryable(message)``."""
    return [{"message": message, "name": "Retryable", "code": "retryable"}, request_id]


def two_peers() -> Router:
    router = Router(balance="pending", attempt_timeout=None)
    router.peer_up("a", ANY, 0)
    router.peer_up("b", ANY, 0)
    return router


def test_a_retryable_error_is_tried_on_another_node_after_the_back_off() -> None:
    router = two_peers()
    assert sends(router.submit(req(0, timeout=5), 0)) == [("a", b"frame0")]
    assert router.reply("a", retryable("r0"), 1, draw=0.5) == []  # waits, nothing answered
    assert router.next_retry() == 1 + RETRY_FIRST * 0.5  # full jitter: the draw times the delay
    assert router.next_deadline() == 1 + RETRY_FIRST * 0.5
    assert router.expire(1 + RETRY_FIRST * 0.25) == []  # not yet
    out = router.expire(1 + RETRY_FIRST * 0.5)
    assert sends(out) == [("b", b"frame0")]  # not back to a, though a is idle and first
    assert router.next_retry() is None
    (answer,) = router.reply("b", ok("r0", "done"), 2)
    assert isinstance(answer, Resolve) and answer.value == "done"
    assert router.traffic() == {"a": (1, 1), "b": (1, 0)}  # the handler ran on a and failed
    assert router.resent == 1


def test_nodes_alternate_with_a_doubling_back_off_and_the_caller_gets_the_last_error() -> None:
    router = two_peers()
    router.submit(req(0, timeout=1.0), 0)
    now, peers, waits = 0.0, ["a"], []
    while True:
        out = router.reply(peers[-1], retryable("r0", f"try {len(peers)}"), now)
        if answers(out):
            break
        at = router.next_retry()
        assert at is not None
        waits.append(round(at - now, 6))
        now = at
        ((peer, _),) = sends(router.expire(now))
        peers.append(peer)
    assert peers == ["a", "b", "a", "b", "a", "b"]  # never the same node twice in a row
    assert waits == [0.02, 0.04, 0.08, 0.16, 0.32]  # at 0.62; the next, 0.64, ends past 1.0
    (failed,) = answers(out)
    assert isinstance(failed, Fail)
    assert type(failed.error) is RemoteError
    assert failed.error.code == "retryable"
    assert failed.error.message == "try 6"  # the last error, not the first
    assert router.pending == 0


def test_with_one_node_it_waits_for_another_and_fails_with_the_last_error_at_the_bound() -> None:
    router = Router(attempt_timeout=None)
    router.peer_up("a", ANY, 0)
    router.submit(req(0, timeout=2), 0)
    router.reply("a", retryable("r0"), 0.5, draw=1.0)
    assert router.expire(0.5 + RETRY_FIRST) == []  # a just asked for a retry: not a again
    assert router.waiting == 1
    assert router.next_deadline() == 2
    (failed,) = answers(router.expire(2))
    assert isinstance(failed, Fail)
    assert type(failed.error) is RemoteError  # not a RequestTimeoutError
    assert failed.error.code == "retryable"
    assert "pool full" in str(failed.error)


def test_a_node_that_turns_up_during_the_wait_takes_the_retry() -> None:
    router = Router(attempt_timeout=None, settle=0)
    router.peer_up("a", ANY, 0)
    router.submit(req(0, timeout=2), 0)
    router.reply("a", retryable("r0"), 0.5)
    router.expire(0.6)
    assert sends(router.peer_up("b", ANY, 0.7)) == [("b", b"frame0")]


def test_a_request_that_times_out_elsewhere_after_a_retry_still_gets_the_last_error() -> None:
    router = two_peers()
    router.submit(req(0, timeout=1), 0)
    router.reply("a", retryable("r0"), 0.1)
    router.expire(0.2)  # to b, which never answers
    (failed,) = answers(router.expire(1))
    assert isinstance(failed, Fail)
    assert type(failed.error) is RemoteError and failed.error.code == "retryable"


@pytest.mark.parametrize(
    ("kwargs", "when"),
    [
        ({"timeout": None}, 0.0),  # no bound: it would retry forever
        ({"timeout": 5, "node": "a"}, 0.0),  # pinned: no other node may take it
        ({"timeout": 1}, 1 - RETRY_FIRST),  # the wait would end at the bound
    ],
)
def test_it_fails_at_once_when_it_may_not_wait(kwargs: dict[str, Any], when: float) -> None:
    router = two_peers()
    router.submit(req(0, **kwargs), 0)
    (failed,) = answers(router.reply("a", retryable("r0"), when))
    assert isinstance(failed, Fail)
    assert type(failed.error) is RemoteError and failed.error.code == "retryable"
    assert router.next_retry() is None
    assert router.pending == 0


def test_a_deadline_that_passes_during_the_wait_fails_with_the_last_error_unsent() -> None:
    router = two_peers()
    router.submit(req(0, timeout=1), 0)
    router.reply("a", retryable("r0"), 0.5)
    out = router.expire(5)  # the timer fired late: both the wait and the bound are over
    assert sends(out) == []
    (failed,) = answers(out)
    assert isinstance(failed, Fail)
    assert type(failed.error) is RemoteError and failed.error.code == "retryable"
    assert router.next_retry() is None


def test_a_cancelled_or_closed_request_in_its_wait_is_never_sent() -> None:
    router = two_peers()
    router.submit(req(0, timeout=5), 0)
    router.reply("a", retryable("r0"), 0.1)
    router.submit(req(1, timeout=5), 0.1)
    router.reply("a", retryable("r1"), 0.1)
    assert router.cancel("r0") == []
    assert router.expire(0.1 + RETRY_FIRST) == [Send("b", b"frame1")]
    router.submit(req(2, timeout=5), 1)
    router.reply("a", retryable("r2"), 1)
    closed = answers(router.close(RequestTimeoutError("closing")))
    assert {o.request.id for o in closed} == {"r1", "r2"}
    assert router.next_retry() is None and router.expire(2) == []


def test_the_back_off_stops_growing_at_its_ceiling() -> None:
    router = two_peers()
    router.submit(req(0, timeout=100), 0)
    now, peer, waits = 0.0, "a", []
    for _ in range(8):
        router.reply(peer, retryable("r0"), now)
        at = router.next_retry()
        assert at is not None
        waits.append(round(at - now, 6))
        now = at
        ((peer, _),) = sends(router.expire(now))
    assert waits == [0.02, 0.04, 0.08, 0.16, 0.32, RETRY_MAX, RETRY_MAX, RETRY_MAX]


def test_the_machine_arms_its_timer_for_the_wait_and_wakes_to_resend() -> None:
    machine = RequesterProtocol(Router(balance="pending", attempt_timeout=None))
    machine.link_up("a", ANY, 0)
    machine.link_up("b", ANY, 0)
    machine.submit(req(0, timeout=5), 0)
    assert machine.frame("a", retryable("r0"), 1, 0.5) == []
    assert machine.wakeup == 1 + RETRY_FIRST * 0.5
    assert machine.next_wakeup() == 1 + RETRY_FIRST * 0.5
    assert sends(machine.wake(1 + RETRY_FIRST * 0.5)) == [("b", b"frame0")]  # type: ignore[arg-type]
    (answer,) = machine.frame("b", ok("r0"), 2)
    assert isinstance(answer, Resolve)
    assert machine.wakeup is None
