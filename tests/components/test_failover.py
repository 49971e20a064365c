"""No lost requests: failover on a killed responder, reconnects, graceful close.

These run real responder processes and kill them with SIGKILL mid-load.
Discovery's node timeout is left long on purpose, so failover can only come
from the link itself dropping (what the OS tells us), not from discovery.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
from typing import Any

import pytest

from coterie import DiscoveryOptions, LinkLostError, Requester, Responder
from tests.helpers import MS, fast_discovery, ms
from tests.procs import ChildComponent

# Long node timeout: failover must not wait for discovery to notice the death.
SLOW_DROP = {"check_interval": ms(5_000), "node_timeout": ms(10_000), "master_timeout": ms(10_000)}

#: Bound for what should happen promptly: discovery, a link, a reply.
SOON = 5_000 * MS


def discovery(port: int) -> DiscoveryOptions:
    return fast_discovery(port, **SLOW_DROP)


def child_discovery(port: int) -> dict[str, Any]:
    """The same options for a child process (``DiscoveryOptions(**these)`` there)."""
    return {k: v for k, v in dataclasses.asdict(discovery(port)).items() if v is not None}


async def test_kill_one_of_three_with_1000_in_flight(disc_port: int) -> None:
    # Busy workers: one request at a time, 1 ms each, so hundreds stay in flight.
    cfg: dict[str, Any] = {"discovery": child_discovery(disc_port), "delay": 1 * MS, "serial": True}
    children = [await ChildComponent.responder(f"worker-{i}", **cfg) for i in range(3)]
    try:
        async with Requester(
            name="failover", discovery=discovery(disc_port), timeout=30_000 * MS
        ) as req:
            await req.wait_connected(3, timeout=2 * SOON)
            answered: collections.Counter[int] = collections.Counter()
            by: collections.Counter[str] = collections.Counter()
            under_way = asyncio.Event()

            async def one(n: int) -> None:
                res = await req.send({"type": "work", "n": n})
                assert res["n"] == n
                answered[n] += 1
                by[res["by"]] += 1
                if sum(answered.values()) >= 100:
                    under_way.set()

            tasks = [asyncio.create_task(one(n)) for n in range(1000)]
            # Kill worker-0 once the load is well under way.
            async with asyncio.timeout(2 * SOON):
                await under_way.wait()
            in_flight_on_victim = sum(
                req.stats().in_flight_on.get(n.id, 0)
                for n in req.peers
                if n.advertisement.get("name") == "worker-0"
            )
            children[0].kill()
            async with asyncio.timeout(4 * SOON):
                await asyncio.gather(*tasks)
            assert len(answered) == 1000
            assert set(answered.values()) == {1}  # each caller got exactly one answer
            assert in_flight_on_victim > 0, "the kill must hit requests in flight"
            # Replies the victim sent before it died still count; the rest of
            # what it held went to the others.
            assert 0 < req.stats().resent <= in_flight_on_victim
            assert by["worker-1"] > 0 and by["worker-2"] > 0
    finally:
        for child in children:
            child.kill()
            await child.proc.wait()


async def test_retry_false_fails_fast_with_link_lost(disc_port: int) -> None:
    cfg: dict[str, Any] = {"discovery": child_discovery(disc_port), "delay": 5_000 * MS}
    child = await ChildComponent.responder("slow", **cfg)
    try:
        async with Requester(
            name="once", discovery=discovery(disc_port), timeout=30_000 * MS
        ) as req:
            await req.wait_connected(1, timeout=2 * SOON)
            call = asyncio.create_task(req.send({"type": "work", "n": 1}, retry=False))
            await asyncio.sleep(0)  # let send() put it on the wire
            assert req.stats().in_flight == 1
            child.kill()
            with pytest.raises(LinkLostError, match="retry=False"):
                async with asyncio.timeout(3_000 * MS):
                    await call
    finally:
        child.kill()
        await child.proc.wait()


async def test_link_cut_and_restored_without_restart(disc_port: int) -> None:
    disc = discovery(disc_port)
    async with Responder(name="steady", discovery=disc) as rep:
        rep.on("work", lambda req: req["n"] * 2)
        async with Requester(name="cut", discovery=disc, timeout=2 * SOON) as req:
            await req.wait_connected(1, timeout=2 * SOON)
            assert await req.send({"type": "work", "n": 1}) == 2
            first_links = rep.links
            assert len(first_links) == 1
            for link in first_links:
                link.abort()  # a real RST on the live connection
            # Service resumes without restarting either side.
            results = await asyncio.gather(*(req.send({"type": "work", "n": n}) for n in range(50)))
            assert results == [n * 2 for n in range(50)]
            assert rep.links and not (rep.links & first_links)


async def test_graceful_close_finishes_work_and_hands_over(disc_port: int) -> None:
    disc = fast_discovery(disc_port)
    async with Responder(name="stayer", discovery=disc) as stayer:
        stayer.on("work", lambda req: "stayer")
        leaver = Responder(name="leaver", discovery=disc)
        await leaver.start()

        @leaver.on("work")
        async def slow(req: dict[str, object]) -> str:
            await asyncio.sleep(200 * MS)
            return "leaver"

        async with Requester(name="gentle", discovery=disc, timeout=2 * SOON) as req:
            await req.wait_connected(2, timeout=2 * SOON)
            first = [asyncio.create_task(req.send({"type": "work"})) for _ in range(10)]
            await asyncio.sleep(50 * MS)
            closing = asyncio.create_task(leaver.close())
            await asyncio.sleep(50 * MS)
            later = await asyncio.gather(*(req.send({"type": "work"}) for _ in range(10)))
            await closing
            done = await asyncio.gather(*first)
            assert "leaver" in done  # its work in hand was finished, not dropped
            assert later == ["stayer"] * 10  # no new work after its goodbye
            assert req.stats().resent == 0
