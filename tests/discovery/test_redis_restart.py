"""Redis discovery survives a Redis restart: nobody goes deaf (real redis-server)."""

from __future__ import annotations

import logging

import pytest

from coterie import DiscoveryOptions, Requester, Responder
from tests.helpers import MS, fast_discovery, ms, wait_for
from tests.redis_server import REDIS, RedisServer

pytestmark = pytest.mark.skipif(REDIS is None, reason="redis-server is not installed")


def options(url: str) -> DiscoveryOptions:
    return fast_discovery(
        redis=url, hostname="127.0.0.1", node_timeout=ms(1_000), master_timeout=ms(1_200)
    )


async def test_mesh_recovers_after_redis_restarts(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="coterie.discovery")
    disc = options(redis_server.url)
    async with Responder(name="before", discovery=disc) as before:
        before.on("who", lambda req: "before")
        async with Requester(name="client", discovery=disc, timeout=5_000 * MS) as req:
            await req.wait_connected(1, timeout=5_000 * MS)
            redis_server.stop()
            redis_server.start()
            # A responder started after the restart must be found, and the
            # one linked before must stay linked.
            async with Responder(name="after", discovery=disc) as after:
                after.on("who", lambda req: "after")
                await req.wait_connected(2, timeout=5_000 * MS)
                answers = {await req.send({"type": "who"}) for _ in range(6)}
                assert answers == {"before", "after"}
                # Still hearing hellos: nobody is dropped for silence.
                names = sorted(str(n.advertisement.get("name")) for n in req.peers)
                assert names == ["after", "before"]
    text = caplog.text
    assert "redis discovery at" in text and "lost" in text
    assert "is back; listening again" in text


async def test_resubscribing_waits_are_drawn_with_jitter(redis_server: RedisServer) -> None:
    """The reader's retries go through the one back-off and its injected draw."""
    from coterie.discovery.redis import RedisTransport

    draws: list[float] = []

    def draw() -> float:
        draws.append(0.5)
        return 0.5

    settings = options(redis_server.url).resolve()
    transport = RedisTransport(settings, retry_max=200 * MS, draw=draw)
    await transport.start(lambda _data, _address: None)
    try:
        redis_server.stop()
        await wait_for(lambda: len(draws) >= 3, 5_000 * MS, what="three retries")
        redis_server.start()
        await wait_for(lambda: transport.reconnects == 1, 5_000 * MS, what="resubscribed")
    finally:
        await transport.close()
