"""Fixtures for the multi-host tests: one bed per module, peers closed after each test.

The bed (``tests/bed.py``) is built inside the session's private network
namespace; without root (no namespace) these tests skip with the reason.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest

from tests.bed import Bed, Host, unavailable_reason
from tests.multihost.peers import BedPeer, Kind, close_all, start_peer
from tests.multihost.servers import Dnsmasq, RedisOnRouter

PeerFactory = Callable[..., Awaitable[BedPeer]]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test of this folder ``netns``."""
    for item in items:
        if "tests/multihost/" in item.nodeid.replace("\\", "/"):
            item.add_marker(pytest.mark.netns)


@pytest.fixture(scope="session")
def bed() -> Iterator[Bed]:
    """Two segments of three hosts each and a router (a1-a3, b1-b3, router).

    One bed for the session: building one takes a few tenths of a second, and
    each test leaves it as it found it (the ``peer`` fixture closes what it
    started and heals every fault).
    """
    reason = unavailable_reason()
    if reason is not None:
        pytest.skip(f"the multi-host bed needs a private network namespace: {reason}")
    with Bed(hosts_per_segment=3, ttl=600) as built:
        yield built


@pytest.fixture
async def peer(bed: Bed) -> AsyncIterator[PeerFactory]:
    """``await peer(host, kind, role, config, env=...)``; all close (and faults heal) after."""
    started: list[BedPeer] = []

    async def start(
        host: Host | str, kind: Kind, role: str, config: dict[str, Any] | None = None, **kw: Any
    ) -> BedPeer:
        where = bed[host] if isinstance(host, str) else host
        p = await start_peer(where, kind, role, config, **kw)
        started.append(p)
        return p

    try:
        yield start
    finally:
        await close_all(started)
        bed.heal_all()


@pytest.fixture
async def dns(bed: Bed) -> AsyncIterator[Dnsmasq]:
    """dnsmasq on the router (not started: ``await dns.start({name: [hosts]})``)."""
    server = Dnsmasq(bed)
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
async def redis(bed: Bed) -> AsyncIterator[RedisOnRouter]:
    """A started redis-server on the router, listening on every segment."""
    server = RedisOnRouter(bed)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()
