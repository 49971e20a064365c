"""Liveness bookkeeping with the clock as an argument."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from coterie.protocol.binding import advert_frame
from coterie.protocol.framing import FrameDecoder
from coterie.protocol.liveness import (
    BYE,
    PING,
    PONG,
    STALL_GRACE,
    Liveness,
    bye_frame,
    is_pong,
    ping_frame,
    pong_frame,
    supports_ping,
)


def busy(*peers: str) -> Callable[[str], int]:
    """The router's in-flight count: 1 on ``peers``, 0 elsewhere."""
    return lambda peer: 1 if peer in peers else 0


def test_an_idle_link_is_never_pinged() -> None:
    live = Liveness(interval=0.25, timeout=1.0)
    live.watch("a", 0.0)
    assert live.next_tick() is None  # nothing to wake up for
    for step in range(1, 100):
        assert live.tick(step * 0.25, busy()) == ([], [])
    assert live.watched == ["a"]  # an hour of silence: still not dead


def test_a_busy_link_is_pinged_once_quiet_for_an_interval() -> None:
    live = Liveness(interval=0.25, timeout=1.0)
    live.watch("a", 0.0)
    assert live.sent("a", 10.0) == pytest.approx(10.25)  # the first in flight: a wake-up
    assert live.sent("a", 10.1) is None  # already busy: nothing new
    assert live.tick(10.2, busy("a")) == ([], [])
    pings, dead = live.tick(10.25, busy("a"))
    assert [p for p, _ in pings] == ["a"] and dead == []
    assert live.next_tick() == pytest.approx(10.5)
    live.frame("a", [PONG, pings[0][1]], 10.3)  # the pong
    assert live.tick(10.5, busy("a")) == ([], [])  # heard 0.2 s ago
    assert live.next_tick() == pytest.approx(10.55)
    (ping,), _ = live.tick(10.55, busy("a"))
    assert ping[1] > pings[0][1]  # a fresh token each time


def test_a_link_under_steady_load_is_never_pinged() -> None:
    live = Liveness(interval=0.25, timeout=1.0)
    live.watch("a", 0.0)
    live.sent("a", 0.0)
    for step in range(1, 200):
        now = step * 0.05
        live.frame("a", [None, "ok", f"r{step}"], now)  # a reply
        due = live.next_tick()
        assert due is not None
        if due <= now:
            assert live.tick(now, busy("a")) == ([], [])


def test_a_quiet_busy_peer_is_dead_after_the_timeout_and_no_longer_watched() -> None:
    live = Liveness(interval=0.25, timeout=1.0)
    live.watch("a", 0.0)
    live.watch("b", 0.0)
    live.sent("a", 5.0)  # quiet counts from the send, not the last frame
    live.sent("b", 5.0)
    live.heard("b", 5.9)
    dead: list[str] = []
    now = 5.0
    while (due := live.next_tick()) is not None and due <= 7.0:
        now = due
        dead += live.tick(now, busy("a", "b"))[1]
        if dead == ["a"]:
            break
    assert dead == ["a"] and now == pytest.approx(6.0)
    assert live.watched == ["b"]
    assert live.silence("b", 6.5) == pytest.approx(0.6)
    while (due := live.next_tick()) is not None and not dead[1:]:
        now = due
        dead += live.tick(now, busy("a", "b"))[1]
    assert dead == ["a", "b"] and now == pytest.approx(6.9)
    assert live.next_tick() is None


def test_a_peer_that_goes_idle_leaves_the_heap() -> None:
    live = Liveness(interval=0.25, timeout=1.0)
    live.watch("a", 0.0)
    live.sent("a", 1.0)
    assert live.busy == ["a"]
    assert live.tick(1.25, busy()) == ([], [])  # its requests were answered
    assert live.busy == [] and live.next_tick() is None
    assert live.sent("a", 3.0) == pytest.approx(3.25)  # busy again: watched again


def test_a_wake_up_costs_the_due_peers_not_every_link() -> None:
    live = Liveness(interval=0.25, timeout=1.0)
    for n in range(1000):
        live.watch(f"p{n}", 0.0)
    live.sent("p7", 1.0)
    asked: list[str] = []

    def inflight(peer: str) -> int:
        asked.append(peer)
        return 1

    pings, _ = live.tick(1.25, inflight)
    assert asked == ["p7"] and [p for p, _ in pings] == ["p7"]


def test_a_stalled_loop_reads_before_anyone_is_judged() -> None:
    live = Liveness(interval=0.25, timeout=1.0)
    live.watch("a", 0.0)
    live.sent("a", 0.0)
    assert live.tick(3.0, busy("a")) == ([], [])  # 2.75 s late: the loop stalled
    assert live.next_tick() == pytest.approx(3.0 + STALL_GRACE)
    live.frame("a", [None, "ok", "r1"], 3.005)  # the reply that sat unread
    assert live.tick(3.0 + STALL_GRACE, busy("a")) == ([], [])


def test_frames_say_what_they_are() -> None:
    live = Liveness()
    assert live.frame("x", [PONG, 3], 1.0) == "pong"
    assert live.frame("x", [BYE], 1.0) == "bye"
    assert live.frame("x", [None, PONG, "r1"], 1.0) == "reply"
    assert live.frame("x", [{"message": "boom"}, "r1"], 1.0) == "reply"


def test_unwatched_peers_are_ignored() -> None:
    live = Liveness()
    live.heard("x", 5.0)
    assert live.sent("x", 5.0) is None
    live.forget("x")
    assert live.watched == [] and live.silence("x", 9.0) == 0.0


def test_next_tick_is_the_earliest_ping_or_death() -> None:
    live = Liveness(interval=0.5, timeout=0.75)
    live.watch("a", 0.0)
    live.sent("a", 0.0)
    live.tick(0.5, busy("a"))  # pinged at 0.5; next ping due at 1.0, death at 0.75
    assert live.next_tick() == pytest.approx(0.75)


@pytest.mark.parametrize(("interval", "timeout"), [(0, 1), (1, 1), (2, 1), (-1, 1)])
def test_interval_must_be_shorter_than_timeout(interval: float, timeout: float) -> None:
    with pytest.raises(ValueError, match="interval < timeout"):
        Liveness(interval=interval, timeout=timeout)


def test_frames_and_the_advertisement() -> None:
    (ping,) = FrameDecoder().feed(ping_frame(7))
    assert ping == [PING, 7]
    (pong,) = FrameDecoder().feed(pong_frame(7))
    assert pong == [PONG, 7] and is_pong(pong)
    assert not is_pong([None, PONG, 7]) and not is_pong([PING, 7])
    assert supports_ping({"liveness": "ping/1"})
    assert not supports_ping({"name": "node cote responder"}) and not supports_ping(None)


def test_a_closing_responders_bye_reads_as_bye() -> None:
    (args,) = FrameDecoder().feed(bye_frame())
    assert isinstance(args, list)
    assert Liveness().frame("a", args, 0.0) == "bye"


def test_stale_heap_entries_are_skipped_inside_a_tick_and_at_the_head() -> None:
    live = Liveness(interval=0.25, timeout=1.0)
    live.watch("a", 0.0)
    live.watch("b", 0.0)
    assert live.sent("a", 0.0) == 0.25
    assert live.sent("b", 0.05) == pytest.approx(0.3)
    live.forget("b")  # its heap entry at 0.3 is stale now
    live.watch("b", 0.1)
    assert live.sent("b", 1.75) == 2.0
    assert live.next_tick() == 0.25
    pings, dead = live.tick(0.4, lambda peer: 1)  # a is due; b's stale 0.3 is skipped
    assert [peer for peer, _ in pings] == ["a"] and dead == []
    live.forget("a")  # the head entry (a at 0.5) is stale now
    assert live.next_tick() == 2.0


def test_a_responders_advert_on_its_link_reads_as_advert() -> None:
    (args,) = FrameDecoder().feed(advert_frame({"name": "v", "respondsTo": ["t"]}))
    assert isinstance(args, list)
    live = Liveness()
    live.watch("a", 0.0)
    assert live.frame("a", args, 3.0) == "advert"
    assert live.silence("a", 3.0) == 0.0  # an advert is a sign of life too


def test_a_forgotten_or_idle_peer_due_first_does_not_hold_up_the_others() -> None:
    live = Liveness(interval=0.25, timeout=1.0)
    for peer in ("gone", "idle", "busy"):
        live.watch(peer, 0.0)
    live.sent("gone", 0.0)
    live.sent("idle", 0.01)
    live.sent("busy", 0.02)
    live.forget("gone")  # its link dropped with its heap entry still in
    pings, dead = live.tick(0.3, busy("busy"))
    assert [p for p, _ in pings] == ["busy"] and dead == []


def test_a_tick_an_interval_late_is_not_a_stall() -> None:
    live = Liveness(interval=0.25, timeout=1.0)
    live.watch("a", 0.0)
    live.sent("a", 0.0)
    pings, _ = live.tick(0.5, busy("a"))  # due at 0.25, exactly one interval late
    assert [p for p, _ in pings] == ["a"]


def test_after_a_stall_the_next_wake_up_is_the_heap_again() -> None:
    live = Liveness(interval=0.25, timeout=1.0)
    live.watch("a", 0.0)
    live.sent("a", 0.0)
    live.tick(3.0, busy("a"))  # stalled
    live.frame("a", [None, "ok", "r1"], 3.005)
    live.tick(3.0 + STALL_GRACE, busy("a"))
    assert live.next_tick() == pytest.approx(3.005 + 0.25)
    live.forget("a")
    live.tick(4.0, busy())
    assert live.next_tick() is None


def test_a_single_argument_frame_that_is_not_a_bye_is_a_reply() -> None:
    assert Liveness().frame("x", ["not a bye"], 1.0) == "reply"
