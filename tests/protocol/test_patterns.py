"""Event and topic patterns: EventEmitter2's handler names and axon's topic filter."""

from __future__ import annotations

import pytest

from coterie.protocol.patterns import (
    best,
    is_pattern,
    matches,
    matches_any,
    specificity,
    topic_matches,
    topic_regex,
)

NAMES = [
    "a",
    "orders",
    "orders::new",
    "orders::new::x",
    "user.x",
    "user.*",
    "x::x",
    "a::b",
    "a::c::b",
    "b",
    "",
    "a::",
    "orders::",
    "ordersX",
]

#: What EventEmitter2 6.0.0 (cote 1.2.0's, ``wildcard: true, delimiter: '::'``)
#: calls for each pattern over :data:`NAMES`, as printed by real Node; the
#: interop test ``test_handler_patterns_match_eventemitter2`` asks it again.
EVENTEMITTER2 = {
    "*": ["a", "orders", "user.x", "user.*", "b", "", "ordersX"],
    "**": NAMES,
    "orders::*": ["orders::new", "orders::"],
    "orders::**": ["orders", "orders::new", "orders::new::x", "orders::"],
    "*::x": ["x::x"],
    "a::**::b": ["a::b", "a::c::b"],
    "**::b": ["a::b", "a::c::b", "b"],
    "orders": ["orders"],
}


@pytest.mark.parametrize("pattern", list(EVENTEMITTER2))
def test_handler_patterns_take_what_eventemitter2_takes(pattern: str) -> None:
    assert [n for n in NAMES if matches(pattern, n)] == EVENTEMITTER2[pattern]


def test_a_star_inside_a_segment_is_a_glob_of_that_segment() -> None:
    # coterie's extension (EventEmitter2 reads a literal "*"): one or more characters.
    assert [n for n in NAMES if matches("user.*", n)] == ["user.x", "user.*"]
    assert matches("orders*", "ordersX") and not matches("orders*", "orders")
    assert not matches("user.*", "user.a::b")  # never across "::"
    assert matches("a.b*", "a.bc") and not matches("a.b*", "axbc")  # "." is literal


def test_many_double_stars_stay_linear() -> None:
    name = "::".join(["a"] * 2000)
    assert not matches("**::**::**::**::b", name)
    assert matches("**::**::**::**::a", name)


def test_what_is_a_pattern() -> None:
    assert is_pattern("*") and is_pattern("orders::*") and is_pattern("a*")
    assert not is_pattern("orders::new")


def test_matches_any_takes_exact_names_and_patterns() -> None:
    assert matches_any(["validate"], "validate")
    assert not matches_any(["validate"], "pay")
    assert matches_any(["validate", "orders::*"], "orders::new")
    assert not matches_any(["validate", "orders::*"], "orders")
    assert matches_any(["**"], "any::thing")
    assert not matches_any([], "x")


def test_the_most_specific_pattern_wins_then_the_first() -> None:
    assert best(["**", "orders::*"], "orders::new") == "orders::*"
    assert best(["orders::*", "**"], "orders::new") == "orders::*"
    assert best(["*::new", "orders::*"], "orders::new") == "*::new"
    assert best(["orders::*", "*::new"], "orders::new") == "orders::*"
    assert best(["**", "*"], "validate") == "*"
    assert best(["orders::*"], "billing") is None
    assert specificity("**") > specificity("orders::*") > specificity("orders::new::x")


def test_topic_filter_is_literal_except_star() -> None:
    # axon's sub-emitter: "*" is one or more characters, "::" included.
    assert topic_matches("message::a.b*", "message::a.bc")
    assert not topic_matches("message::a.b*", "message::axbc")  # "." is literal
    assert not topic_matches("message::a.b*", "message::a.b")  # "*" needs one character
    assert not topic_matches("message::a.b*", "xmessage::a.bc")
    assert topic_matches("message::*", "message::shop::user.created")
    assert topic_regex("message::*") is topic_regex("message::*")  # compiled once
