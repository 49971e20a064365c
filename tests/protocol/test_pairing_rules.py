"""Link security in pairing, and which monitors a component reports to.

Found by mutation testing: these rules had no pure test.
"""

from __future__ import annotations

from typing import Any

import pytest

from coterie.protocol.pairing import pairs, reports_to, same_link_security

TLS = {"tls": "mtls/1"}
REQ: dict[str, Any] = {"key": "$$", "axon_type": "req"}
REP: dict[str, Any] = {"key": "$$", "axon_type": "rep"}


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
