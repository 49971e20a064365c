"""Redis discovery with one channel per group, against a real redis-server."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from coterie import DiscoveryOptions, Monitor, Requester, Responder
from tests.helpers import MS, fast_discovery, wait_for
from tests.redis_server import REDIS

pytestmark = [
    pytest.mark.redis,
    pytest.mark.skipif(REDIS is None, reason="redis-server is not installed"),
]


def _knows(comp: Any, ids: set[str]) -> Callable[[], bool]:
    return lambda: set(comp.discovery.nodes) == ids


async def _server(url: str, *command: str) -> Any:
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(url)
    try:
        return await client.execute_command(*command)  # type: ignore[no-untyped-call]
    finally:
        await client.aclose()


def test_the_default_is_cotes_channel() -> None:
    assert DiscoveryOptions(redis="redis://r").resolve({}).redis_channel == "cote"
    env = {"COTE_DISCOVERY_REDIS_URL": "redis://r", "COTERIE_DISCOVERY_REDIS_CHANNEL": "group"}
    assert DiscoveryOptions().resolve(env).redis_channel == "group"
    with pytest.raises(ValueError, match="'cote' or 'group'"):
        DiscoveryOptions(redis="redis://r", redis_channel="groups").resolve({})


async def test_default_mode_stays_on_cote(redis_url: str) -> None:
    """Node peers listen on ``cote`` only: by default everyone is there."""
    disc = fast_discovery(redis=redis_url, hostname="127.0.0.1")
    async with Responder(name="r", namespace="a", discovery=disc) as rep:
        rep.on("x", lambda r: 1)
        async with Requester(name="q", namespace="a", discovery=disc, timeout=5_000 * MS) as req:
            assert await req.send({"type": "x"}) == 1
            channels = await _server(redis_url, "PUBSUB", "CHANNELS")
            assert channels == [b"cote"]


async def test_a_node_hears_only_its_group(redis_url: str) -> None:
    disc = fast_discovery(redis=redis_url, hostname="127.0.0.1", redis_channel="group")
    comps: list[Any] = []
    try:
        for ns in ("a", "a", "b"):
            rep = Responder(name=f"rep {ns}{len(comps)}", namespace=ns, discovery=disc)
            rep.on("who", lambda r, ns=ns: ns)
            comps.append(rep)
        req_a = Requester(name="req a", namespace="a", discovery=disc, timeout=5_000 * MS)
        req_b = Requester(name="req b", namespace="b", discovery=disc, timeout=5_000 * MS)
        monitor = Monitor(name="mon", discovery=disc)
        comps += [req_a, req_b, monitor]
        await asyncio.gather(*(c.start() for c in comps))
        await req_a.wait_connected(2, 5_000 * MS)
        await req_b.wait_connected(1, 5_000 * MS)
        assert {await req_a.send({"type": "who"}) for _ in range(4)} == {"a"}
        assert await req_b.send({"type": "who"}) == "b"
        everyone = {c.id for c in comps}
        await wait_for(
            lambda: set(monitor.discovery.nodes) == everyone - {monitor.id},  # type: ignore[union-attr]
            2_000 * MS,
            what="the monitor hears every group",
        )
        await asyncio.sleep(300 * MS)  # three more hello intervals
        for comp in comps[:5]:
            group = {c.id for c in comps if c.namespace == comp.namespace} - {comp.id}
            # (waited for: a node missed under load comes back with its next hello)
            await wait_for(
                _knows(comp, group | {monitor.id}),
                2_000 * MS,
                what=f"{comp.name} knows its group and the monitor, and no one else",
            )
        channels = sorted(await _server(redis_url, "PUBSUB", "CHANNELS"))
        assert channels == [b"cote:/+", b"cote:/a", b"cote:/b"]
        numsub = await _server(redis_url, "PUBSUB", "NUMSUB", "cote:/a", "cote:/b", "cote")
        # One subscription per group and process: its components share it.
        assert numsub == [b"cote:/a", 1, b"cote:/b", 1, b"cote", 0]
    finally:
        await asyncio.gather(*(c.close() for c in comps), return_exceptions=True)
