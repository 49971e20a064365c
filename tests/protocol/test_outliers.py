"""Outlier ejection in the router: a peer that does not answer leaves the rotation.

Time is an argument; there is no loop and no sleep.
"""

from __future__ import annotations

import pytest

from coterie.errors import RequestTimeoutError
from coterie.protocol.ejection import EJECT_AFTER, EJECT_FIRST
from coterie.protocol.routing import (
    ATTEMPT_FLOOR,
    Fail,
    Outcome,
    Resolve,
    Router,
    Send,
)
from tests.protocol.helpers import ANY, req, sends


def sent_to(outcomes: list[Outcome]) -> list[str]:
    return [o.peer for o in outcomes if isinstance(o, Send)]


def ids(outcomes: list[Outcome], peer: str) -> list[str]:
    return [
        o.frame.decode().replace("frame", "r")
        for o in outcomes
        if isinstance(o, Send) and o.peer == peer
    ]


def warmed(router: Router, peer: str, took: float = 0.01) -> None:
    """One answered request, so the adaptive attempt bound has a sample."""
    out = router.submit(req(999), 0.0)
    assert sent_to(out) == [peer]
    router.reply(peer, [None, "ok", "r999"], took)


def test_the_adaptive_bound_needs_a_sample_and_has_a_floor() -> None:
    router = Router()
    assert router.attempt_bound() is None
    router.peer_up("a", ANY, 0)
    warmed(router, "a", took=0.01)
    assert router.attempt_bound() == pytest.approx(max(ATTEMPT_FLOOR, 10 * 0.01))
    router.submit(req(1), 1.0)
    router.reply("a", [None, "ok", "r1"], 1.5)  # a slow one raises the bound
    assert router.attempt_bound() == pytest.approx(5.0)
    assert Router(attempt_timeout=None).attempt_bound() is None
    assert Router(attempt_timeout=0.3).attempt_bound() == 0.3
    with pytest.raises(ValueError, match="attempt_timeout"):
        Router(attempt_timeout=0)


def test_a_blackhole_is_ejected_and_its_requests_answered_elsewhere() -> None:
    router = Router(attempt_timeout=1.0)
    router.peer_up("good", ANY, 0)
    router.peer_up("hole", ANY, 0)
    placed: dict[str, list[str]] = {"good": [], "hole": []}
    for n in range(2 * EJECT_AFTER):
        out = router.submit(req(n, timeout=30.0), 0.0)
        for peer in sent_to(out):
            placed[peer].append(f"r{n}")
    for rid in placed["good"]:
        assert isinstance(router.reply("good", [None, "ok", rid], 0.01)[0], Resolve)
    assert len(placed["hole"]) == EJECT_AFTER
    assert router.next_deadline() == pytest.approx(1.0)
    out = router.expire(1.0)
    # Every stranded request goes to the good peer, once, and the hole is out.
    assert sorted(ids(out, "good")) == sorted(placed["hole"])
    assert router.ejected(1.0) == ["hole"] and router.ejections == 1
    assert router.attempts_expired == EJECT_AFTER
    # New work all goes to the good peer while the hole is ejected.
    assert {p for n in range(10, 20) for p in sent_to(router.submit(req(n), 1.1))} == {"good"}
    # A late answer from the hole is dropped: each caller gets one answer.
    assert router.reply("hole", [None, "late", placed["hole"][0]], 1.2) == []
    answers = [router.reply("good", [None, "ok", rid], 1.2) for rid in placed["hole"]]
    assert all(len(a) == 1 and isinstance(a[0], Resolve) for a in answers)


def _eject(router: Router) -> None:
    router.peer_up("good", ANY, 0)
    router.peer_up("hole", ANY, 0)
    for _ in range(EJECT_AFTER):
        router.peer_failed("hole", 0.0)
    assert router.ejected(0.0) == ["hole"]


def test_after_the_back_off_one_probe_goes_and_an_answer_restores_the_peer() -> None:
    router = Router(attempt_timeout=1.0)
    _eject(router)
    assert sent_to(router.submit(req(1), EJECT_FIRST - 0.01)) == ["good"]
    assert sent_to(router.submit(req(2), EJECT_FIRST)) == ["hole"]  # the probe
    assert sent_to(router.submit(req(3), EJECT_FIRST)) == ["good"]  # only one probe
    assert sent_to(router.submit(req(4), EJECT_FIRST)) == ["good"]
    router.reply("hole", [None, "ok", "r2"], EJECT_FIRST + 0.1)
    assert router.ejected(EJECT_FIRST + 0.1) == []
    assert set(sent_to(router.submit(req(5), 2)) + sent_to(router.submit(req(6), 2))) == {
        "good",
        "hole",
    }


def test_a_failed_probe_doubles_the_back_off() -> None:
    router = Router(attempt_timeout=1.0)
    _eject(router)
    assert sent_to(router.submit(req(1), EJECT_FIRST)) == ["hole"]
    router.expire(EJECT_FIRST + 1.0)  # the probe outlived its attempt bound
    t = EJECT_FIRST + 1.0
    assert router.ejected(t) == ["hole"]
    assert sent_to(router.submit(req(2), t + 2 * EJECT_FIRST - 0.01)) == ["good"]
    assert sent_to(router.submit(req(3), t + 2 * EJECT_FIRST)) == ["hole"]


def test_the_last_peer_that_takes_work_is_never_ejected() -> None:
    router = Router(attempt_timeout=1.0)
    router.peer_up("only", ANY, 0)
    for _ in range(2 * EJECT_AFTER):
        router.peer_failed("only", 0.0)
    assert router.ejected(0.0) == []
    assert sent_to(router.submit(req(1), 0.0)) == ["only"]


def test_fewer_failures_than_the_threshold_or_a_success_between_do_not_eject() -> None:
    router = Router(attempt_timeout=1.0)
    router.peer_up("a", ANY, 0)
    router.peer_up("b", ANY, 0)
    for _ in range(EJECT_AFTER - 1):
        router.peer_failed("b", 0.0)
    assert router.ejected(0.0) == []
    # A success resets the count: consecutive failures only.
    out = router.submit(req(1), 0.0) + router.submit(req(2), 0.0)
    on_b = ids(out, "b")
    router.reply("b", [None, "ok", on_b[0]], 0.1)
    router.peer_failed("b", 0.2)
    assert router.ejected(0.2) == []


def test_malformed_replies_count_as_failures() -> None:
    router = Router()
    router.peer_up("a", ANY, 0)
    router.peer_up("b", ANY, 0)
    for _ in range(EJECT_AFTER):
        assert router.reply("b", ["garbage"], 0.0) == []
    assert router.ejected(0.0) == ["b"]


def test_work_that_must_not_run_twice_is_not_resent_on_an_attempt_bound() -> None:
    router = Router(attempt_timeout=1.0)
    router.peer_up("a", ANY, 0)
    router.peer_up("b", ANY, 0)
    out = router.submit(req(1, retry=False, timeout=5.0), 0.0)
    (peer,) = sent_to(out)
    assert sent_to(router.expire(1.0)) == []
    assert router.inflight_on(peer) == 1 and router.resent == 0
    (fail,) = router.expire(5.0)
    assert isinstance(fail, Fail) and isinstance(fail.error, RequestTimeoutError)


def test_ejection_outlives_a_reconnect_but_not_the_node_leaving() -> None:
    router = Router(attempt_timeout=1.0)
    _eject(router)
    router.link_lost("hole", 0.1)
    router.peer_up("hole", ANY, 0.2)
    assert router.ejected(0.2) == ["hole"]
    router.peer_leaving("hole")
    router.link_lost("hole", 0.3)
    router.peer_up("hole", ANY, 0.4)  # it came back as a new node
    assert router.ejected(0.4) == []


def test_no_attempt_bound_without_samples_in_auto_mode() -> None:
    router = Router()
    router.peer_up("a", ANY, 0)
    router.peer_up("b", ANY, 0)
    router.submit(req(1), 0.0)
    assert router.next_deadline() is None
    assert router.expire(1000.0) == []


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
