"""Failover: lost links resend elsewhere, leaving peers drain, returning peers take work."""

from __future__ import annotations

from coterie.errors import LinkLostError
from coterie.protocol.routing import Drained, Fail, Resolve, Router
from tests.protocol.helpers import ANY, adv, answers, ok, req, sends

# -- lost links ------------------------------------------------------------------------


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


def test_retried_counts_every_resend_over_link_losses() -> None:
    router = Router(settle=0)
    router.peer_up("a", ANY, 0)
    router.submit(req(0), 0)
    router.link_lost("a", 1)
    router.peer_up("b", ANY, 2)
    router.link_lost("b", 3)
    assert router.resent == 2


# -- leaving and returning peers -------------------------------------------------------


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


def test_a_leaving_peer_drains_when_its_last_attempt_is_resent() -> None:
    router = Router(attempt_timeout=1.0)
    router.peer_up("old", ANY, 0.0)
    router.submit(req(0, timeout=30.0), 0.0)  # goes to old
    router.peer_up("new", ANY, 0.0)
    assert router.peer_leaving("old") == []  # it still holds r0
    out = router.expire(1.0)  # r0 outlived its attempt bound on old
    assert Drained("old") in out
    assert sends(out) == [("new", b"frame0")]


def test_a_returning_peer_takes_work_again() -> None:
    router = Router(settle=0)
    router.peer_up("a", ANY, 0)
    router.peer_leaving("a")
    router.submit(req(0), 0)
    assert router.waiting == 1
    assert sends(router.peer_returned("a", 1)) == [("a", b"frame0")]
