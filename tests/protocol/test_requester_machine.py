"""The requester machine: every rule of the requester side, with the clock as an argument.

Each test feeds :class:`RequesterProtocol` inputs and checks the outputs it
returns and the wake-up it names, as the asyncio adapter would carry them out.
"""

from __future__ import annotations

from typing import Any

import pytest

from coterie.errors import LinkLostError, NotRunningError, RemoteError, RequestTimeoutError
from coterie.protocol.binding import ADVERT, routed
from coterie.protocol.framing import FrameDecoder
from coterie.protocol.liveness import BYE, DEFAULT_TIMEOUT, PING, PONG, Liveness
from coterie.protocol.requester import (
    CANCEL_ADVERTISED,
    Abort,
    Cancel,
    Close,
    Forged,
    Output,
    RequesterProtocol,
    check_request,
    supports_cancel,
)
from coterie.protocol.routing import Fail, Request, Resolve, Router, Send
from tests.protocol.helpers import adv, ok, req

#: A coterie responder: it answers pings (and so binds its routed fields to its link).
PINGS = {"liveness": "ping/1"}


def coterie(name: str, *types: str, **extra: Any) -> dict[str, Any]:
    """A coterie responder's advertisement."""
    return {**adv(name, *types), **PINGS, **extra}


def machine(*, liveness_interval: float = 0.25, liveness_timeout: float = 1.0) -> RequesterProtocol:
    """A machine with no settle window and no attempt bound (their rules have their own tests)."""
    return RequesterProtocol(
        Router(settle=0.0, attempt_timeout=None),
        Liveness(interval=liveness_interval, timeout=liveness_timeout),
    )


def test_a_default_machine_has_default_parts() -> None:
    m = RequesterProtocol()
    assert m.router.balance == "round_robin" and m.liveness.timeout == DEFAULT_TIMEOUT


def frames(outputs: list[Output]) -> list[tuple[str, list[Any]]]:
    """``(peer, decoded frame)`` of every :class:`Send`."""
    out: list[tuple[str, list[Any]]] = []
    for o in outputs:
        if type(o) is Send:
            (args,) = FrameDecoder().feed(o.frame)
            assert isinstance(args, list)
            out.append((o.peer, args))
    return out


def sent(outputs: list[Output]) -> list[tuple[str, bytes]]:
    return [(o.peer, o.frame) for o in outputs if type(o) is Send]


def test_check_request_refuses_what_is_not_a_request() -> None:
    check_request({"type": "t"})
    with pytest.raises(TypeError, match="must be a dict, got list"):
        check_request(["type"])
    with pytest.raises(ValueError, match="needs a 'type' field"):
        check_request({"kind": "t"})


def test_a_coterie_responders_link_is_pinged_at_once_and_a_node_cote_one_never() -> None:
    m = machine()
    out = m.link_up("c", coterie("c", "t"), 0.0)
    assert frames(out) == [("c", [PING, 0])]
    assert m.liveness.watched == ["c"]
    assert m.link_up("n", adv("n", "t"), 0.0) == []  # Node cote: would take a ping for a request
    assert m.liveness.watched == ["c"]
    assert m.wakeup is None  # idle links: nothing due


def test_a_request_is_sent_answered_and_the_wakeup_is_its_deadline_or_the_first_ping() -> None:
    m = machine(liveness_interval=0.25, liveness_timeout=1.0)
    m.link_up("c", coterie("c", "t"), 0.0)
    out = m.submit(req(1, timeout=5.0), 10.0)
    assert sent(out) == [("c", b"frame1")]
    assert m.wakeup == pytest.approx(10.25)  # the link became busy: ping by then
    (answer,) = m.frame("c", ok("r1", "v"), 10.1)
    assert type(answer) is Resolve and answer.value == "v"
    assert m.wakeup is None
    out = m.submit(req(2, timeout=0.1), 11.0)  # busy again, but the deadline comes first
    assert m.wakeup == pytest.approx(11.1)
    # A Node cote responder is never pinged: the wake-up is the deadline alone.
    n = machine()
    n.link_up("n", adv("n", "t"), 0.0)
    n.submit(req(1, timeout=2.0), 1.0)
    assert n.wakeup == pytest.approx(3.0)
    n.submit(req(2), 1.0)  # no bound at all: nothing to wake up for
    assert n.wakeup is None


def test_a_request_with_nowhere_to_go_waits_and_times_out_on_wake() -> None:
    m = machine()
    assert m.submit(req(1, timeout=1.0), 0.0) == []
    assert m.wakeup == pytest.approx(1.0)
    assert m.next_wakeup() == pytest.approx(1.0)
    assert m.wake(0.5) == []
    (failed,) = m.wake(1.0)
    assert type(failed) is Fail and type(failed.error) is RequestTimeoutError
    assert m.wakeup is None and m.next_wakeup() is None


def test_a_busy_silent_responder_is_pinged_then_aborted_and_its_requests_resent() -> None:
    m = machine(liveness_interval=0.25, liveness_timeout=1.0)
    m.link_up("a", coterie("a", "t"), 0.0)
    m.link_up("b", coterie("b", "t"), 0.0)
    (first,) = sent(m.submit(req(1), 0.0))
    quiet = first[0]
    # Pings go out while it is quiet; it answers nothing.
    for now in (0.25, 0.5, 0.75):
        assert [(p, args[0]) for p, args in frames(m.wake(now))] == [(quiet, PING)]
    out = m.wake(1.0)
    aborts = [o for o in out if type(o) is Abort]
    assert aborts == [Abort(quiet, 1.0, 1)]
    assert quiet not in m.liveness.watched
    # The adapter aborts the link; its drop resends the request to the other one.
    other = "b" if quiet == "a" else "a"
    assert sent(m.link_down(quiet, 1.0)) == [(other, b"frame1")]
    assert m.router.resent == 1


def test_a_pong_is_a_sign_of_life_only() -> None:
    m = machine(liveness_interval=0.25, liveness_timeout=1.0)
    m.link_up("c", coterie("c", "t"), 0.0)
    m.submit(req(1), 0.0)
    out = m.wake(0.25)
    ((_, (_, token)),) = frames(out)
    assert m.frame("c", [PONG, token], 0.3) == []
    assert m.wakeup == m.next_wakeup() == pytest.approx(0.5)  # the entry already due
    assert m.wake(0.5) == []  # heard 0.2 s ago: no ping
    assert m.wakeup == pytest.approx(0.55)  # an interval after the pong
    assert not [o for o in m.wake(1.0) if type(o) is Abort]  # heard at 0.3: not dead yet


def test_a_bye_on_the_link_stops_new_sends_there() -> None:
    m = machine()
    m.link_up("a", coterie("a", "t"), 0.0)
    m.link_up("b", coterie("b", "t"), 0.0)
    assert m.frame("a", [BYE], 0.0) == []  # nothing in flight: Drained, but not a gone node
    assert m.serving("t") == ["b"]
    for n in range(4):
        assert sent(m.submit(req(n), 0.0)) == [("b", f"frame{n}".encode())]


def test_a_node_discovery_dropped_is_closed_once_its_last_reply_is_in() -> None:
    m = machine()
    m.link_up("a", adv("a", "t"), 0.0)
    m.submit(req(1), 0.0)
    assert m.node_removed("a", 0.1) == []  # a request still in flight there
    assert m.serving("t") == []
    answer, close = m.frame("a", ok("r1"), 0.2)
    assert type(answer) is Resolve and close == Close("a")
    # Dropped with nothing in flight: closed at once.
    m.link_up("b", adv("b", "t"), 0.0)
    assert m.node_removed("b", 0.3) == [Close("b")]


def test_a_node_that_returns_before_its_link_closed_takes_requests_again() -> None:
    m = machine()
    m.link_up("a", adv("a", "t"), 0.0)
    m.submit(req(1), 0.0)
    m.node_removed("a", 0.1)
    assert m.submit(req(2), 0.2) == []  # waits: the only responder is leaving
    assert sent(m.node_added("a", 0.3)) == [("a", b"frame2")]
    m.frame("a", ok("r1"), 0.4)
    m.frame("a", ok("r2"), 0.4)
    # No longer gone: drained after a bye on its link, it is not closed (it closes itself).
    assert m.frame("a", [BYE], 0.5) == []


def test_a_link_down_of_a_gone_node_forgets_it() -> None:
    m = machine()
    m.link_up("a", adv("a", "t"), 0.0)
    m.submit(req(1), 0.0)
    m.node_removed("a", 0.1)
    assert m.link_down("a", 0.2) == []  # the request waits for another responder
    m.link_up("a", adv("a", "t"), 0.3)  # the same id back on a new link
    assert sent(m.submit(req(2), 0.4)) == [("a", b"frame2")]


def test_an_advert_on_the_link_changes_what_routing_trusts_and_a_hello_cannot() -> None:
    m = machine()
    m.link_up("c", coterie("c", "old"), 0.0)
    assert m.submit(req(1, "new"), 0.0) == []  # waits: c does not serve it yet
    # A forged hello that would change c's types is ignored and counted.
    out = m.node_updated("c", coterie("c", "new"), 0.1)
    assert out == [Forged("c", 1)] and m.forged == 1
    assert m.wakeup is None
    # A hello that changes nothing routed passes.
    assert m.node_updated("c", coterie("c", "old", weight=2), 0.1) == []
    # The link itself says it serves the new type: the waiting request goes.
    fields = routed(coterie("c", "new"))
    assert sent(m.frame("c", [ADVERT, fields], 0.2)) == [("c", b"frame1")]
    # Malformed fields change nothing.
    assert m.frame("c", [ADVERT, {"respondsTo": "new"}], 0.3) == []
    assert m.serving("new") == ["c"]


def test_a_node_cote_responders_hello_is_trusted() -> None:
    m = machine()
    m.link_up("n", adv("n", "old"), 0.0)
    m.submit(req(1, "new"), 0.0)
    assert sent(m.node_updated("n", adv("n", "new"), 0.1)) == [("n", b"frame1")]


def test_a_bad_frame_counts_a_failure_towards_ejection() -> None:
    m = machine()
    m.link_up("a", adv("a", "t"), 0.0)
    m.link_up("b", adv("b", "t"), 0.0)
    for _ in range(5):
        assert m.bad_frame("a", 1.0) == []
    assert m.router.ejected(1.0) == ["a"]


def test_link_down_resends_or_fails_what_it_held() -> None:
    m = machine()
    m.link_up("a", adv("a", "t"), 0.0)
    m.submit(req(1), 0.0)
    m.submit(req(2, retry=False), 0.0)
    out = m.link_down("a", 1.0)
    (failed,) = [o for o in out if type(o) is Fail]
    assert failed.request.id == "r2" and type(failed.error) is LinkLostError
    assert m.router.waiting == 1


def test_a_remote_error_fails_the_request() -> None:
    m = machine()
    m.link_up("a", adv("a", "t"), 0.0)
    m.submit(req(1), 0.0)
    (failed,) = m.frame("a", [{"message": "boom"}, None, "r1"], 0.1)
    assert type(failed) is Fail and type(failed.error) is RemoteError


def test_cancel_withdraws_and_tells_only_a_responder_that_takes_a_cancel() -> None:
    field, value = CANCEL_ADVERTISED
    assert supports_cancel({field: value}) and not supports_cancel({}) and not supports_cancel(None)
    m = machine()
    m.link_up("a", {**adv("a", "t"), field: value}, 0.0)
    m.submit(req(1), 0.0)
    assert m.cancel("r1", 0.5) == [Cancel("a", "r1")]
    assert m.router.pending == 0 and m.wakeup is None
    assert m.frame("a", ok("r1"), 0.6) == []  # its late reply is dropped
    assert m.cancel("r1", 0.7) == []  # twice: nothing
    # A Node cote responder (no such field) gets nothing new.
    n = machine()
    n.link_up("n", adv("n", "t"), 0.0)
    n.submit(req(1), 0.0)
    assert n.cancel("r1", 0.5) == []
    # A waiting request is withdrawn quietly.
    assert n.submit(req(2, "other"), 0.0) == []
    assert n.cancel("r2", 0.5) == [] and n.router.waiting == 0


def test_cancel_on_a_node_discovery_dropped_closes_it() -> None:
    m = machine()
    m.link_up("a", adv("a", "t"), 0.0)
    m.submit(req(1), 0.0)
    m.node_removed("a", 0.1)
    assert m.cancel("r1", 0.2) == [Close("a")]


def test_close_fails_every_live_request() -> None:
    m = machine()
    m.link_up("a", adv("a", "t"), 0.0)
    m.submit(req(1), 0.0)
    m.submit(req(2, "other"), 0.0)
    out = m.close(NotRunningError("closed"))
    assert sorted(o.request.id for o in out if type(o) is Fail) == ["r1", "r2"]
    assert m.wakeup is None


def test_an_absolute_deadline_bounds_a_request_whatever_its_timeout() -> None:
    m = machine()
    m.link_up("a", adv("a", "t"), 0.0)
    m.submit(Request("r1", b"f1", "t", timeout=10.0, deadline=3.0), 1.0)
    assert m.wakeup == pytest.approx(3.0)  # the earlier of the two
    m.submit(Request("r2", b"f2", "t", timeout=1.0, deadline=30.0), 1.0)
    assert m.router.due(m.router.get("r2")) == pytest.approx(2.0)  # type: ignore[arg-type]
    m.submit(Request("r3", b"f3", "t", deadline=4.0), 1.0)  # no timeout: the deadline alone
    out = m.wake(3.0)
    assert [o.request.id for o in out if type(o) is Fail] == ["r1", "r2"]
    (late,) = m.wake(4.0)
    assert type(late) is Fail and late.request.id == "r3"
    # A deadline already past: it fails at once, unsent.
    (now_late,) = m.submit(Request("r4", b"f4", "t", timeout=5.0, deadline=4.0), 4.0)
    assert type(now_late) is Fail and "deadline had already passed" in str(now_late.error)
    assert m.router.pending == 0


def test_a_request_pinned_to_one_node_goes_there_only() -> None:
    m = machine()
    m.link_up("a", adv("a", "t"), 0.0)
    m.link_up("b", adv("b", "t"), 0.0)
    m.link_up("x", adv("x", "other"), 0.0)
    for n in range(4):
        assert sent(m.submit(req(n, node="b"), 0.0)) == [("b", f"frame{n}".encode())]
    assert sorted(m.serving("t")) == ["a", "b"]
    with pytest.raises(LookupError, match=r"node 'z' is not linked.*serve it: a, b"):
        m.submit(req(9, node="z"), 0.0)
    with pytest.raises(LookupError, match=r"node 'x' \(x\) does not serve 't'$"):
        m.submit(req(9, node="x"), 0.0)
    with pytest.raises(LookupError, match="does not serve 't' in subset 's'"):
        m.submit(req(9, node="a", subset="s"), 0.0)
    m.node_removed("b", 0.0)
    with pytest.raises(LookupError, match=r"node .b. is not linked \(or is leaving\)"):
        m.submit(req(9, node="b"), 0.0)
    empty = machine()
    with pytest.raises(LookupError, match="serve it: none"):
        empty.submit(req(1, node="a"), 0.0)
    assert empty.router.pending == 0


def test_a_pinned_request_whose_link_drops_waits_for_that_node() -> None:
    m = machine()
    m.link_up("a", adv("a", "t"), 0.0)
    m.link_up("b", adv("b", "t"), 0.0)
    m.submit(req(1, node="a", timeout=5.0), 0.0)
    assert m.link_down("a", 1.0) == []  # not to b
    assert sent(m.link_up("a", adv("a", "t"), 2.0)) == [("a", b"frame1")]


def test_a_request_sent_from_the_queue_makes_its_link_busy() -> None:
    m = machine(liveness_interval=0.25, liveness_timeout=1.0)
    assert m.submit(req(1), 10.0) == []  # no responder yet, no bound: nothing due
    assert m.wakeup is None
    out = m.link_up("c", coterie("c", "t"), 10.0)
    assert sent(out)[1:] == [("c", b"frame1")]  # after its first ping
    assert m.liveness.busy == ["c"]
    assert m.wakeup == pytest.approx(10.25)  # checked an interval later
