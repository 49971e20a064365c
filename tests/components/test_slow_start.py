"""A new responder that takes work and never answers gets only a small share (issue 17 item 5).

Real sockets, in one process. The blackhole answers liveness pings, so only
the attempt bound can tell it from a slow responder; slow start keeps what it
swallows before ejection catches it to a few requests.
"""

from __future__ import annotations

import asyncio
import collections

from coterie import Requester, Responder
from tests.helpers import MS, DiscoveryFactory

SOON = 5_000 * MS
WORKERS = 20


async def _load(req: Requester, seconds: float, answers: collections.Counter[str]) -> None:
    loop = asyncio.get_running_loop()
    stop = loop.time() + seconds

    async def worker() -> None:
        while loop.time() < stop:
            answers[await req.send({"type": "work"})] += 1

    await asyncio.gather(*(worker() for _ in range(WORKERS)))


async def test_a_new_blackhole_under_load_swallows_at_most_a_few_requests(
    disc: DiscoveryFactory,
) -> None:
    forever = asyncio.Event()
    reached = 0
    async with Responder("real", discovery=disc()) as real:
        real.on("work", lambda req: "real")
        async with Requester("client", discovery=disc(), timeout=10) as req:
            await req.wait_connected(1, timeout=SOON)
            alone: collections.Counter[str] = collections.Counter()
            await _load(req, 1.0, alone)  # also samples for the adaptive attempt bound
            hole = Responder("blackhole", discovery=disc())

            @hole.on("work")
            async def never(request: dict[str, object]) -> str:
                nonlocal reached
                reached += 1
                await forever.wait()
                return "never"

            answers: collections.Counter[str] = collections.Counter()
            loaded = asyncio.create_task(_load(req, 3.0, answers))
            await asyncio.sleep(200 * MS)
            async with hole:
                await req.wait_connected(2, timeout=SOON)
                await loaded
                forever.set()
    print(
        f"\n  a new blackhole under {WORKERS} workers: it took {reached} requests; "
        f"{sum(alone.values())}/s alone, {sum(answers.values()) / 3:.0f}/s with it "
        f"({sum(answers.values()) / 3 / sum(alone.values()):.2f}x); "
        f"ejections {req.stats().ejections}"
    )
    assert set(answers) == {"real"}
    assert 1 <= reached <= 5
