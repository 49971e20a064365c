"""Advertisements as cote rewrites them, and cote's pairing rule.

Pairing includes link security (TLS on both sides or on neither); a component
reports to a monitor by the same kind of rule (``reports_to``).
"""

from __future__ import annotations

from typing import Any

import pytest

from coterie.protocol.pairing import (
    build_advertisement,
    environment_prefix,
    pairs,
    reports_to,
    role_of,
    same_link_security,
    serves,
)


@pytest.mark.parametrize(
    ("key", "environment", "expected"),
    [
        (None, "", "$$"),
        ("", "", "$$"),
        ("users", "", "$$users"),
        ("users", "prod", "prod:$$users"),
        (None, "prod", "prod:$$"),
    ],
)
def test_key_rewrite(key: str | None, environment: str, expected: str) -> None:
    adv = build_advertisement("rep", name="n", namespace=None, key=key, environment=environment)
    assert adv["key"] == expected


def test_environment_prefix() -> None:
    assert environment_prefix("staging") == "staging:"
    assert environment_prefix("") == ""
    adv = build_advertisement("req", name="n", namespace=None, key="k", environment="staging")
    assert adv["key"] == "staging:$$k"


def test_shape_and_defaults() -> None:
    adv = build_advertisement(
        "rep",
        name=None,
        namespace=None,
        key=None,
        environment="",
        extra={"respondsTo": ["a"], "key": "spoof", "axon_type": "pub-emitter"},
    )
    assert adv["type"] == "service"
    assert isinstance(adv["name"], str) and adv["name"]  # Node peers need a string name
    assert adv["axon_type"] == "rep"
    assert adv["key"] == "$$"  # extra fields cannot override the key or the role
    assert adv["respondsTo"] == ["a"]
    assert "namespace" not in adv
    monitor = build_advertisement(
        "", name="m", namespace=None, key=None, environment="", extra={"type": "monitor"}
    )
    assert monitor["type"] == "monitor" and "axon_type" not in monitor


def test_namespace_none_is_missing_but_empty_is_kept() -> None:
    assert "namespace" not in build_advertisement(
        "rep", name="n", namespace=None, key=None, environment=""
    )
    adv = build_advertisement("rep", name="n", namespace="", key=None, environment="")
    assert adv["namespace"] == ""


TLS = {"tls": "mtls/1"}
REQ: dict[str, Any] = {"key": "$$", "axon_type": "req"}
REP: dict[str, Any] = {"key": "$$", "axon_type": "rep"}


@pytest.mark.parametrize(
    ("mine", "theirs", "expected"),
    [
        (REQ, {"key": "$$", "axon_type": "rep"}, True),
        (REQ, {"key": "$$", "axon_type": "req"}, False),
        (REQ, {"key": "$$", "axon_type": "pub-emitter"}, False),
        (REQ, {"key": "$$users", "axon_type": "rep"}, False),
        (REQ, {"key": "prod:$$", "axon_type": "rep"}, False),
        # JavaScript loose equality: missing == null, but not "".
        (REQ, {"key": "$$", "axon_type": "rep", "namespace": None}, True),
        (REQ, {"key": "$$", "axon_type": "rep", "namespace": ""}, False),
        ({**REQ, "namespace": ""}, {"key": "$$", "axon_type": "rep", "namespace": ""}, True),
        ({**REQ, "namespace": "a"}, {"key": "$$", "axon_type": "rep", "namespace": "a"}, True),
        ({**REQ, "namespace": "a"}, {"key": "$$", "axon_type": "rep", "namespace": "b"}, False),
        ({**REQ, "namespace": "a"}, {"key": "$$", "axon_type": "rep"}, False),
        (REQ, {"key": "$$", "type": "monitor"}, False),
    ],
)
def test_pairing_rule(mine: dict[str, object], theirs: dict[str, object], expected: bool) -> None:
    assert pairs(mine, theirs, "rep") is expected


@pytest.mark.parametrize(
    ("mine", "theirs", "expected"),
    [
        ({}, {}, True),
        (TLS, TLS, True),
        (TLS, {}, False),
        ({}, TLS, False),
        (TLS, {"tls": "mtls/2"}, False),
    ],
)
def test_same_link_security(mine: dict[str, Any], theirs: dict[str, Any], expected: bool) -> None:
    assert same_link_security(mine, theirs) is expected
    assert pairs({**REQ, **mine}, {**REP, **theirs}, "rep") is expected


MONITOR: dict[str, Any] = {"type": "monitor", "key": "$$"}


@pytest.mark.parametrize(
    ("mine", "theirs", "expected"),
    [
        # A monitor with the bare key sees every component of its environment.
        ({"key": "$$users"}, MONITOR, True),
        ({"key": "$$"}, MONITOR, True),
        ({"key": "$$users"}, {**MONITOR, "key": "$$users"}, True),
        ({"key": "$$orders"}, {**MONITOR, "key": "$$users"}, False),
        ({"key": "prod:$$users"}, MONITOR, False),
        ({"key": "$$"}, {**MONITOR, "type": "service"}, False),
        ({"key": "$$"}, {"key": "$$"}, False),
        ({"key": None}, MONITOR, False),
        ({}, MONITOR, False),
        ({"key": "$$"}, {"type": "monitor", "key": None}, False),
        ({"key": "$$"}, {"type": "monitor"}, False),
        ({"key": "$$", **TLS}, {**MONITOR, **TLS}, True),
        ({"key": "$$", **TLS}, MONITOR, False),
        ({"key": "$$"}, {**MONITOR, **TLS}, False),
    ],
)
def test_reports_to(mine: dict[str, Any], theirs: dict[str, Any], expected: bool) -> None:
    assert reports_to(mine, theirs) is expected


def test_serves_respects_responds_to() -> None:
    assert serves({}, "anything")  # Node responders advertise no list: they take all
    assert serves({"respondsTo": "not-a-list"}, "x")
    assert serves({"respondsTo": ["a", "b"]}, "b")
    assert not serves({"respondsTo": ["a", "b"]}, "c")
    assert not serves({"respondsTo": []}, "a")
    assert serves({"respondsTo": ["*"]}, "c")


def test_serves_reads_patterns_as_eventemitter2_does() -> None:
    # A responder with a pattern handler advertises the pattern (cote's on('orders::*')).
    assert serves({"respondsTo": ["**"]}, "orders::new::x")
    assert serves({"respondsTo": ["orders::*"]}, "orders::new")
    assert not serves({"respondsTo": ["orders::*"]}, "orders")
    assert not serves({"respondsTo": ["*"]}, "orders::new")  # "*" is one segment
    assert not serves({"respondsTo": ["orders::*", None]}, 5)  # no string type to match
    assert serves({"respondsTo": [None, "a::*"]}, "a::b")  # junk entries are skipped


@pytest.mark.parametrize(
    ("advertisement", "role"),
    [
        ({"axon_type": "req"}, "requester"),
        ({"axon_type": "rep"}, "responder"),
        ({"axon_type": "pub-emitter"}, "publisher"),
        ({"axon_type": "sub-emitter"}, "subscriber"),
        ({"axon_type": "sockend"}, "sockend"),
        ({"axon_type": "custom-thing"}, "custom-thing"),  # unknown roles as they are
        ({"type": "monitor"}, "monitor"),  # no axon_type: the type, if it says more
        ({"type": "service"}, "unknown"),
        ({"axon_type": 7, "type": 7}, "unknown"),
        ({}, "unknown"),
    ],
)
def test_role_of_names_a_role_for_people_and_metrics(
    advertisement: dict[str, object], role: str
) -> None:
    assert role_of(advertisement) == role
    built = build_advertisement("req", name=None, namespace=None, key=None, environment="")
    assert role_of(built) == "requester"
