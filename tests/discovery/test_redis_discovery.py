"""Redis discovery against a real redis-server started for the test."""

from __future__ import annotations

import asyncio

import pytest

from coterie import Requester, Responder
from tests.helpers import MS, fast_discovery
from tests.redis_server import REDIS

pytestmark = pytest.mark.skipif(REDIS is None, reason="redis-server is not installed")


async def test_request_reply_over_redis_discovery(redis_url: str) -> None:
    disc = fast_discovery(redis=redis_url, hostname="127.0.0.1")
    async with Responder(name="redis rep", discovery=disc) as rep:
        rep.on("sum", lambda req: sum(req["xs"]))
        async with Requester(name="redis req", discovery=disc, timeout=5_000 * MS) as req:
            assert req.discovery_settings is not None and req.discovery_settings.use_host_names
            assert await req.send({"type": "sum", "xs": [1, 2, 3]}) == 6
            peers = req.peers
            assert [p.host_name for p in peers] == ["127.0.0.1"]
            assert peers[0].address == "0.0.0.0"  # Redis carries no source address


async def test_redis_env_vars_select_redis(monkeypatch: pytest.MonkeyPatch, redis_url: str) -> None:
    monkeypatch.setenv("COTE_DISCOVERY_REDIS_URL", redis_url)
    monkeypatch.setenv("DISCOVERY_HOSTNAME", "127.0.0.1")
    # Only the timings are set here: Redis comes from the environment.
    fast = fast_discovery()
    async with Responder(name="env rep", discovery=fast) as rep:
        rep.on("ping", lambda req: "pong")
        async with Requester(name="env req", discovery=fast, timeout=5_000 * MS) as req:
            assert req.discovery_settings is not None and req.discovery_settings.redis is not None
            assert req.discovery_settings.redis.connection_url() == redis_url
            assert await asyncio.wait_for(req.send({"type": "ping"}), 5_000 * MS) == "pong"
