"""Requests without a peer: the queue, its bounds, and peers arriving (the settle window)."""

from __future__ import annotations

import pytest

from coterie.errors import QueueFullError, RequestTimeoutError
from coterie.protocol.routing import Fail, Router
from tests.protocol.helpers import ANY, adv, answers, req, sends


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


def test_bounds_may_be_zero_but_not_negative() -> None:
    router = Router(max_waiting=0, settle=0)
    router.peer_up("a", ANY, 0)
    assert sends(router.submit(req(0), 0)) == [("a", b"frame0")]
    with pytest.raises(ValueError, match="must not be negative"):
        Router(max_waiting=-1)
    with pytest.raises(ValueError, match="must not be negative"):
        Router(settle=-0.01)


def test_a_changed_advertisement_releases_waiting_requests() -> None:
    router = Router(settle=0)
    router.peer_up("a", adv("a", "other"), 0)
    router.submit(req(0, "new"), 0)
    assert sends(router.peer_changed("a", adv("a", "other", "new"), 1)) == [("a", b"frame0")]


# -- peers arriving --------------------------------------------------------------------


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
