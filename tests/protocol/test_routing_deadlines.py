"""When the router next needs the adapter: ``due`` for one request, ``next_deadline`` for all.

And the inputs about peers it does not know, which must change nothing.
"""

from __future__ import annotations

import pytest

from coterie.protocol.ejection import EJECT_AFTER
from coterie.protocol.routing import Drained, Router
from tests.protocol.helpers import ANY, ok, req, sends


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


def test_inputs_about_unknown_peers_change_nothing() -> None:
    router = Router()
    router.submit(req(0, timeout=1.0), 0.0)  # waits: no peer
    assert router.peer_failed("ghost", 0.0) == []
    assert router.peer_changed("ghost", ANY, 0.0) == []
    assert router.pending == 1 and router.next_deadline() == pytest.approx(1.0)


def test_a_leaving_peer_drains_when_its_last_attempt_is_resent() -> None:
    router = Router(attempt_timeout=1.0)
    router.peer_up("old", ANY, 0.0)
    router.submit(req(0, timeout=30.0), 0.0)  # goes to old
    router.peer_up("new", ANY, 0.0)
    assert router.peer_leaving("old") == []  # it still holds r0
    out = router.expire(1.0)  # r0 outlived its attempt bound on old
    assert Drained("old") in out
    assert sends(out) == [("new", b"frame0")]


def test_when_every_peer_that_takes_work_is_ejected_requests_wait_for_a_probe() -> None:
    router = Router(attempt_timeout=1.0)
    for peer in ("a", "b", "c"):
        router.peer_up(peer, ANY, 0.0)
    for peer in ("a", "b"):  # c still takes work, so both may go
        for _ in range(EJECT_AFTER):
            router.peer_failed(peer, 0.0)
    assert router.ejected(0.0) == ["a", "b"]
    router.link_lost("c", 0.0)
    assert sends(router.submit(req(0, timeout=30.0), 0.1)) == []  # before the back-off ends
    assert router.waiting == 1


def test_a_cancelled_request_leaves_the_deadline_queue() -> None:
    router = Router(attempt_timeout=None)
    router.submit(req(0, timeout=2.0), 0.0)
    router.submit(req(1, timeout=2.0), 0.5)
    router.cancel("r0")
    assert router.next_deadline() == pytest.approx(2.5)


def test_a_lone_ejected_peer_takes_nothing_before_its_probe() -> None:
    router = Router(attempt_timeout=1.0)
    router.peer_up("a", ANY, 0.0)
    router.peer_up("b", ANY, 0.0)
    for _ in range(EJECT_AFTER):
        router.peer_failed("a", 0.0)
    router.link_lost("b", 0.0)
    assert router.ejected(0.0) == ["a"]
    assert sends(router.submit(req(0, timeout=30.0), 0.1)) == []
    assert router.waiting == 1
