"""A frozen responder is told from a slow one: its requests move within the bound.

The responders are real processes. SIGSTOP freezes one: its kernel still
acknowledges TCP, so only coterie's liveness pings can tell. Discovery's node
timeout is long on purpose, so it cannot be what rescues the requests.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import signal
from typing import Any

from coterie import DiscoveryOptions, Requester, Responder
from coterie.protocol.liveness import DEFAULT_TIMEOUT
from coterie.transport.link import Link
from tests.helpers import MS, fast_discovery, ms, wait_for
from tests.procs import ChildComponent

SLOW_DROP = {"check_interval": ms(10_000), "node_timeout": ms(30_000), "master_timeout": ms(30_000)}


def discovery(port: int) -> DiscoveryOptions:
    return fast_discovery(port, **SLOW_DROP)


def child_discovery(port: int) -> dict[str, Any]:
    return {k: v for k, v in dataclasses.asdict(discovery(port)).items() if v is not None}


async def _frozen_with_requests_in_flight(disc_port: int, steady: bool) -> None:
    cfg: dict[str, Any] = {"discovery": child_discovery(disc_port), "delay": 300 * MS}
    frozen, healthy = [await ChildComponent.responder(f"w{i}", **cfg) for i in range(2)]
    try:
        async with Requester(name="liveness", discovery=discovery(disc_port), timeout=10) as req:
            await req.wait_connected(2, timeout=5_000 * MS)
            frozen_id = frozen.ready["id"]
            answered: collections.Counter[int] = collections.Counter()
            by: dict[int, str] = {}
            done_at: dict[int, float] = {}
            loop = asyncio.get_running_loop()
            stop_load = asyncio.Event()

            async def one(n: int) -> None:
                res = await req.send({"type": "work", "n": n})
                assert res["n"] == n
                answered[n] += 1
                by[n] = res["by"]
                done_at[n] = loop.time()

            async def steady_load() -> None:
                # Keep about 100 requests in flight until told to stop.
                n = 10_000
                while not stop_load.is_set():
                    batch = [asyncio.create_task(one(n + i)) for i in range(100)]
                    n += 100
                    await asyncio.gather(*batch)

            first = [asyncio.create_task(one(n)) for n in range(100)]
            load = asyncio.create_task(steady_load()) if steady else None
            await wait_for(lambda: req.stats().in_flight_on.get(frozen_id, 0) > 0, 5_000 * MS)
            stranded = req.stats().in_flight_on.get(frozen_id, 0)
            frozen.proc.send_signal(signal.SIGSTOP)
            frozen_at = loop.time()
            async with asyncio.timeout(10):
                await asyncio.gather(*first)
            stop_load.set()
            if load is not None:
                async with asyncio.timeout(10):
                    await load
            assert stranded > 0
            assert all(count == 1 for count in answered.values())
            assert set(range(100)) <= set(answered)
            moved = [n for n in range(100) if done_at[n] > frozen_at + 250 * MS]
            assert moved and all(by[n] == "w1" for n in moved)
            recovery = max(done_at[n] for n in range(100)) - frozen_at
            # Liveness bound, then the healthy worker's own 300 ms, with room.
            assert recovery < DEFAULT_TIMEOUT + 1.0 + 500 * MS, recovery
            assert req.stats().resent >= stranded
    finally:
        frozen.proc.send_signal(signal.SIGCONT)
        await frozen.stop()
        await healthy.stop()


async def test_frozen_responder_without_other_load(disc_port: int) -> None:
    await _frozen_with_requests_in_flight(disc_port, steady=False)


async def test_frozen_responder_under_steady_load(disc_port: int) -> None:
    await _frozen_with_requests_in_flight(disc_port, steady=True)


async def test_an_idle_link_is_not_pinged_and_a_quiet_busy_one_is(disc_port: int) -> None:
    """Frames the responder reads: one ping at link-up, then nothing while idle."""
    interval = 20 * MS
    release = asyncio.Event()
    async with Responder("slow", discovery=discovery(disc_port)) as rep:

        @rep.on("slow")
        async def slow(req: dict[str, Any]) -> str:
            await release.wait()
            return "done"

        async with Requester(
            "idle",
            discovery=discovery(disc_port),
            liveness_interval=interval,
            liveness_timeout=50 * interval,
        ) as req:
            await req.wait_connected(1, timeout=5_000 * MS)
            await wait_for(lambda: len(rep.links) == 1 and _only(rep.links).frames == 1)
            link = _only(rep.links)
            await asyncio.sleep(10 * interval)
            assert link.frames == 1  # idle: the link-up ping only
            pending = asyncio.create_task(req.send({"type": "slow"}))
            # In flight and quiet: pinged about once per interval.
            await wait_for(lambda: link.frames >= 5, 5_000 * MS)
            release.set()
            assert await pending == "done"
            settled = link.frames
            await asyncio.sleep(10 * interval)
            assert link.frames <= settled + 1  # idle again: at most one ping in the air


def _only(links: frozenset[Link]) -> Link:
    (link,) = links
    return link
