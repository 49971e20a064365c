"""Deadlines: timeouts and what their errors say.

``due`` says when one request next needs the adapter, ``next_deadline`` when any does.
"""

from __future__ import annotations

import pytest

from coterie.protocol.routing import Fail, Router
from tests.protocol.helpers import ANY, adv, answers, ok, req


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


def test_a_timed_out_request_in_flight_is_on_no_peer() -> None:
    router = Router()
    router.peer_up("a", ANY, 0)
    router.submit(req(0, timeout=1.0), 0)
    (fail,) = answers(router.expire(1.0))
    assert isinstance(fail, Fail)
    assert fail.request.peer is None


def test_a_type_served_only_by_a_leaving_peer_times_out_as_waiting() -> None:
    router = Router()
    router.peer_up("a", adv("a", "t"), 0)
    router.peer_leaving("a")
    router.submit(req(0, timeout=1.0), 0)
    (fail,) = answers(router.expire(1.0))
    assert isinstance(fail, Fail)
    assert str(fail.error).endswith("timed out waiting for a responder")


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


def test_an_answered_request_never_expires() -> None:
    router = Router()
    router.peer_up("a", ANY, 0)
    router.submit(req(0, timeout=1.0), 0)
    router.submit(req(1, timeout=1.0), 0)
    router.reply("a", ok("r0"), 0.5)
    router.reply("a", ok("r1"), 0.5)
    assert router.expire(5.0) == []
    assert router.next_deadline() is None


# -- when the router next needs the adapter --------------------------------------------


def test_due_is_the_deadline_or_the_attempt_bound_whichever_is_first() -> None:
    router = Router(attempt_timeout=1.0)
    waiting = req(0, timeout=5.0)
    router.submit(waiting, 0.0)  # no peer yet: only its own deadline counts
    assert router.due(waiting) == pytest.approx(5.0)
    router.peer_up("a", ANY, 0.0)  # it goes out now
    assert waiting.peer == "a"
    assert router.due(waiting) == pytest.approx(1.0)  # sent at 0, attempt bound 1 s
    short = req(1, timeout=0.5)
    router.submit(short, 0.0)
    assert router.due(short) == pytest.approx(0.5)  # its deadline comes first
    unbounded = Router(attempt_timeout=None)
    forever = req(2)
    unbounded.submit(forever, 0.0)
    assert unbounded.due(forever) is None


def test_next_deadline_forgets_answered_requests_and_empty_queues() -> None:
    router = Router(attempt_timeout=None)
    router.peer_up("a", ANY, 0.0)
    router.submit(req(0, timeout=2.0), 0.0)
    router.submit(req(1, timeout=3.0), 0.0)
    assert router.next_deadline() == pytest.approx(2.0)
    router.reply("a", ok("r0"), 0.1)  # the 2 s queue holds only an answered request
    assert router.next_deadline() == pytest.approx(3.0)
    router.reply("a", ok("r1"), 0.1)
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


def test_a_cancelled_request_leaves_the_deadline_queue() -> None:
    router = Router(attempt_timeout=None)
    router.submit(req(0, timeout=2.0), 0.0)
    router.submit(req(1, timeout=2.0), 0.5)
    router.cancel("r0")
    assert router.next_deadline() == pytest.approx(2.5)
