"""Hellos with nowhere to go: one WARNING that says what to change, not a DEBUG line per hello."""

from __future__ import annotations

import asyncio
import logging

import pytest

from coterie import Responder
from tests import netns
from tests.helpers import MS, DiscoveryFactory

pytestmark = pytest.mark.skipif(
    netns.reason_unavailable is not None,
    reason="needs the tests' namespace (no route to 198.18/15)",
)


async def test_no_route_is_said_once_with_the_fix(
    disc: DiscoveryFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="coterie.discovery")
    # The tests' namespace has loopback only: 198.18.0.0/15 has no route.
    async with Responder("offline", discovery=disc(broadcast="198.18.255.255")):
        await asyncio.sleep(500 * MS)  # five hello intervals
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert [r.getMessage() for r in warnings] == [
        "discovery cannot send hellos (Network is unreachable): no route for the discovery "
        "scope; set COTE_BROADCAST_ADDRESS=127.255.255.255 to stay on this host, or give "
        "seeds (COTERIE_DISCOVERY_SEEDS) or Redis (COTE_DISCOVERY_REDIS_URL) to reach other hosts"
    ]
