"""The link cap, each source's share and TLS handshake slots (coterie.protocol.admission)."""

from __future__ import annotations

from typing import Any

import pytest

from coterie.protocol.admission import Admission, Verdict, idle


def test_a_source_holds_at_most_its_share() -> None:
    gate: Admission[str] = Admission(10, 2)
    assert gate.arrive("a1", "A") == Verdict(True, None, "")
    assert gate.arrive("a2", "A").admitted
    assert gate.arrive("a3", "A") == Verdict(False, None, "share")
    assert gate.arrive("b1", "B").admitted
    assert len(gate) == 3 and gate.held_by("A") == 2 and gate.refused_share == 1
    gate.leave("a1")
    assert gate.arrive("a3", "A").admitted


def test_at_the_cap_the_oldest_unproven_entry_is_evicted() -> None:
    gate: Admission[str] = Admission(3)
    for key in ("old", "mid", "new"):
        gate.arrive(key, key)
    gate.prove("old")
    verdict = gate.arrive("next", "next")
    assert verdict == Verdict(True, "mid", "")
    assert "mid" not in gate and len(gate) == 3 and gate.evicted == 1
    assert gate.leave("mid") == []  # the adapter's close of an evicted key is a no-op
    gate.prove("new")
    gate.prove("next")
    assert gate.arrive("late", "late") == Verdict(False, None, "full")
    assert gate.refused_full == 1


def test_without_eviction_a_full_cap_refuses() -> None:
    gate: Admission[str] = Admission(1, evict=False)
    gate.arrive("a", "A")
    assert gate.arrive("b", "B") == Verdict(False, None, "full")


def test_an_entry_arriving_twice_counts_once() -> None:
    gate: Admission[str] = Admission(2)
    gate.arrive("a", "A")
    assert gate.arrive("a", "A").admitted and len(gate) == 1


def test_handshakes_in_progress_are_bounded_in_all_and_per_source() -> None:
    gate: Admission[str] = Admission(100, handshakes=3, handshakes_per_source=2)
    for key, source in [("a1", "A"), ("a2", "A"), ("a3", "A"), ("b1", "B"), ("c1", "C")]:
        gate.arrive(key, source)
    assert gate.want_handshake("a1") and gate.want_handshake("a2")
    assert not gate.want_handshake("a3")  # A's two slots are taken
    assert gate.want_handshake("b1")
    assert not gate.want_handshake("c1")  # all three are taken
    assert gate.in_handshake == 3 and gate.waiting == 2
    # A slot of A's frees: the oldest waiting one that fits is a3 (A has one left).
    assert gate.handshake_over("a1") == ["a3"]
    # B's ends: c1 may go.
    assert gate.handshake_over("b1") == ["c1"]
    assert gate.handshake_over("b1") == []  # once only


def test_leaving_mid_handshake_frees_its_slot() -> None:
    gate: Admission[str] = Admission(10, handshakes=1)
    gate.arrive("a", "A")
    gate.arrive("b", "B")
    assert gate.want_handshake("a") and not gate.want_handshake("b")
    assert gate.leave("a") == ["b"]
    assert gate.leave("b") == [] and len(gate) == 0 and gate.in_handshake == 0


def test_a_waiting_entry_that_leaves_is_not_started() -> None:
    gate: Admission[str] = Admission(10, handshakes=1)
    for key in "abc":
        gate.arrive(key, key)
    gate.want_handshake("a")
    gate.want_handshake("b")
    gate.want_handshake("c")
    gate.leave("b")
    assert gate.handshake_over("a") == ["c"]


@pytest.mark.parametrize(("limit", "share"), [(0, None), (5, 0), (5, 6)])
def test_nonsense_bounds_are_refused(limit: int, share: int | None) -> None:
    with pytest.raises(ValueError):
        Admission(limit, share)


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        ((0,), {}, "the link cap must be at least 1"),
        ((4, 5), {}, "a source's share must be 1 to 4"),
        ((4,), {"handshakes": 0}, "handshakes in progress must be at least 1"),
        ((4,), {"handshakes_per_source": 0}, "handshakes in progress must be at least 1"),
    ],
)
def test_each_nonsense_bound_is_named(
    args: tuple[int, ...], kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        Admission(*args, **kwargs)


def test_what_is_held_unproven_and_next_to_go() -> None:
    gate: Admission[str] = Admission(5)
    assert gate.oldest_unproven() is None
    gate.arrive("a", "A")
    gate.arrive("b", "B")
    assert (gate.unproven, gate.oldest_unproven(), gate.proven("a")) == (2, "a", False)
    gate.prove("a")
    assert (gate.unproven, gate.oldest_unproven(), gate.proven("a")) == (1, "b", True)
    assert not gate.proven("nobody")
    assert gate.arrive("a", "A") == Verdict(True, None, "")  # already in: nothing changes
    assert len(gate) == 2


def test_a_handshake_is_asked_once_and_only_for_an_admitted_key() -> None:
    gate: Admission[str] = Admission(5, handshakes=1)
    assert not gate.want_handshake("stranger")
    gate.arrive("a", "A")
    assert gate.want_handshake("a") and gate.in_handshake == 1
    assert not gate.want_handshake("a")  # already shaking
    assert gate.handshake_over("stranger") == []


class _Link:
    def __init__(self, opened_at: float, frames: int = 0) -> None:
        self.opened_at = opened_at
        self.frames = frames


def test_a_link_silent_past_the_idle_timeout_is_closed_and_checked_again_while_one_waits() -> None:
    old, young, talked = _Link(0.0), _Link(9.0), _Link(0.0, frames=1)
    assert idle([old, young, talked], 10.0, 10.0) == ([old], 2.5)  # young is still silent
    assert idle([young, talked], 19.0, 10.0) == ([young], None)  # nothing left to wait for
    assert idle([talked], 100.0, 10.0) == ([], None)  # a link that spoke is never idle
    assert idle([], 0.0, 10.0) == ([], None)
    assert idle([_Link(0.0)], 9.999, 10.0) == ([], 2.5)  # not quite yet
