"""The Sockend's namespace rules, with the clock as an argument: the cap and idleness."""

from __future__ import annotations

import pytest

from coterie.protocol.namespaces import NamespaceLife


def life(max_namespaces: int = 3, pinned: tuple[str | None, ...] = (None,)) -> NamespaceLife:
    return NamespaceLife(node_timeout=5.0, max_namespaces=max_namespaces, pinned=pinned)


def test_admits_up_to_the_cap_then_refuses() -> None:
    table = life(max_namespaces=2)
    assert table.admit("a", 0.0) and table.admit("b", 0.0)
    assert table.full and len(table) == 2
    assert not table.admit("c", 0.0)
    assert "c" not in table
    # Known ones are still admitted at the cap (a new hello from them).
    assert table.admit("a", 1.0)
    assert table.last_seen("a") == 1.0


def test_pinned_namespaces_are_always_admitted_never_counted_never_idle() -> None:
    table = life(max_namespaces=1, pinned=(None, "kept"))
    assert table.admit("a", 0.0)
    assert table.full
    assert table.admit(None, 0.0) and table.admit("kept", 0.0)
    assert len(table) == 1
    assert None in table and "kept" in table
    assert table.idle(1_000.0) == ["a"]
    assert table.last_seen("kept") is None


def test_none_and_empty_string_are_different_namespaces() -> None:
    table = life(max_namespaces=1, pinned=(None,))
    assert table.admit("", 0.0)
    assert "" in table and len(table) == 1


def test_a_namespace_is_idle_only_after_the_node_timeout_without_a_node() -> None:
    table = life()
    table.admit("a", 10.0)
    table.admit("b", 10.0)
    table.seen("b", 14.0)
    assert table.idle(15.0) == []  # exactly the timeout: not yet
    assert table.idle(15.001) == ["a"]
    assert table.idle(19.001) == ["a", "b"]


def test_seen_keeps_the_latest_time_and_ignores_unknown_namespaces() -> None:
    table = life()
    table.admit("a", 10.0)
    table.seen("a", 8.0)  # an older node's time, e.g. one that said goodbye
    assert table.last_seen("a") == 10.0
    table.seen("zzz", 99.0)
    assert "zzz" not in table and len(table) == 1


def test_forget_frees_room_and_the_namespace_may_come_back() -> None:
    table = life(max_namespaces=1)
    table.admit("a", 0.0)
    assert not table.admit("b", 1.0)
    table.forget("a")
    assert table.idle(100.0) == []
    assert table.admit("b", 1.0)
    table.forget("b")
    assert table.admit("a", 2.0) and table.last_seen("a") == 2.0


def test_idle_namespaces_stay_until_forgotten() -> None:
    table = life()
    table.admit("a", 0.0)
    assert table.idle(10.0) == ["a"]
    assert table.idle(11.0) == ["a"]
    table.forget("a")
    table.forget("a")  # twice is harmless
    assert table.idle(12.0) == []


def test_a_cap_of_zero_serves_pinned_namespaces_only() -> None:
    table = life(max_namespaces=0, pinned=(None,))
    assert table.admit(None, 0.0)
    assert not table.admit("a", 0.0)


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"node_timeout": 0, "max_namespaces": 1}, ValueError),
        ({"node_timeout": 1, "max_namespaces": -1}, ValueError),
        ({"node_timeout": 1, "max_namespaces": True}, TypeError),
        ({"node_timeout": 1, "max_namespaces": 1.5}, TypeError),
    ],
)
def test_bad_settings_are_refused(kwargs: dict[str, float], error: type[Exception]) -> None:
    with pytest.raises(error):
        NamespaceLife(**kwargs)  # type: ignore[arg-type]
