"""Liveness bookkeeping with the clock as an argument."""

from __future__ import annotations

import pytest

from coterie.protocol.framing import FrameDecoder
from coterie.protocol.liveness import (
    PING,
    PONG,
    Liveness,
    is_pong,
    ping_frame,
    pong_frame,
    supports_ping,
)


def test_a_watched_peer_is_pinged_every_interval() -> None:
    live = Liveness(interval=0.25, timeout=1.0)
    live.watch("a", 0.0)
    assert live.next_tick() == pytest.approx(0.25)
    assert live.tick(0.2) == ([], [])
    pings, dead = live.tick(0.25)
    assert [p for p, _ in pings] == ["a"] and dead == []
    live.heard("a", 0.3)
    assert live.tick(0.4) == ([], [])  # pinged 0.15 s ago
    (ping,), _ = live.tick(0.5)
    assert ping[1] > pings[0][1]  # a fresh token each time


def test_a_silent_peer_is_dead_after_the_timeout_and_no_longer_watched() -> None:
    live = Liveness(interval=0.25, timeout=1.0)
    live.watch("a", 0.0)
    live.watch("b", 0.0)
    live.heard("b", 0.9)
    assert live.tick(0.99)[1] == []
    assert live.tick(1.0)[1] == ["a"]
    assert live.watched == ["b"]
    assert live.silence("b", 1.5) == pytest.approx(0.6)
    assert live.tick(1.95)[1] == ["b"]
    assert live.next_tick() is None


def test_hearing_from_a_peer_keeps_it_alive_however_long() -> None:
    live = Liveness(interval=0.25, timeout=1.0)
    live.watch("a", 0.0)
    for step in range(1, 40):
        now = step * 0.25
        live.heard("a", now - 0.1)
        assert live.tick(now)[1] == []


def test_unwatched_peers_are_ignored() -> None:
    live = Liveness()
    live.heard("x", 5.0)
    live.forget("x")
    assert live.watched == [] and live.silence("x", 9.0) == 0.0


def test_next_tick_is_the_earliest_ping_or_death() -> None:
    live = Liveness(interval=0.5, timeout=0.75)
    live.watch("a", 0.0)
    live.tick(0.5)  # pinged at 0.5; next ping due at 1.0, death at 0.75
    assert live.next_tick() == pytest.approx(0.75)


@pytest.mark.parametrize(("interval", "timeout"), [(0, 1), (1, 1), (2, 1), (-1, 1)])
def test_interval_must_be_shorter_than_timeout(interval: float, timeout: float) -> None:
    with pytest.raises(ValueError, match="interval < timeout"):
        Liveness(interval=interval, timeout=timeout)


def test_frames_and_the_advertisement() -> None:
    (ping,) = FrameDecoder().feed(ping_frame(7))
    assert ping == [PING, 7]
    (pong,) = FrameDecoder().feed(pong_frame(7))
    assert pong == [PONG, 7] and is_pong(pong)  # type: ignore[arg-type]
    assert not is_pong([None, PONG, 7]) and not is_pong([PING, 7])
    assert supports_ping({"liveness": "ping/1"})
    assert not supports_ping({"name": "node cote responder"}) and not supports_ping(None)
