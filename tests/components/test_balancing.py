"""Balanced requesters and ``__subset`` routing over real sockets."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

from coterie import PendingBalancedRequester, Requester, Responder, TimeBalancedRequester
from tests.helpers import MS, DiscoveryFactory


def _worker(name: str, disc: DiscoveryFactory, delay: float, **kwargs: Any) -> Responder:
    responder = Responder(name, discovery=disc(), **kwargs)

    @responder.on("work")
    async def work(req: dict[str, Any]) -> dict[str, Any]:
        await asyncio.sleep(delay)
        return {"by": name, "saw": sorted(req)}

    return responder


async def test_pending_balanced_prefers_the_responder_with_fewer_in_flight(
    disc: DiscoveryFactory,
) -> None:
    # The slow responder holds every request it gets until the end. It starts
    # with one (sent to it alone by subset); then four clients send one
    # request at a time each.
    release, enough, first_held = asyncio.Event(), asyncio.Event(), asyncio.Event()
    held = 0
    slow = Responder("slow", discovery=disc(), advertisement={"subset": "slow"})

    @slow.on("work")
    async def hold(req: dict[str, Any]) -> str:
        nonlocal held
        held += 1
        first_held.set()
        await release.wait()
        return "slow"

    async with (
        _worker("fast", disc, 0),
        slow,
        PendingBalancedRequester("pb", discovery=disc(), timeout=10_000 * MS) as req,
    ):
        await req.wait_connected(2, timeout=5_000 * MS)
        primer = asyncio.create_task(req.send({"type": "work", "__subset": "slow"}))
        async with asyncio.timeout(5_000 * MS):
            await first_held.wait()
        by: Counter[str] = Counter()

        async def client() -> None:
            while not enough.is_set():
                reply = await req.send({"type": "work"})
                by[reply if reply == "slow" else reply["by"]] += 1
                if by["fast"] >= 40:
                    enough.set()

        clients = [asyncio.create_task(client()) for _ in range(4)]
        try:
            # Round robin (or a preference for the busier one) would soon
            # leave every client waiting on the slow one: this would time out.
            async with asyncio.timeout(5_000 * MS):
                await enough.wait()
            # A request goes to the slow one only while it holds no more than
            # the fast one, which has at most 4 - (held - 1): it never holds 4.
            assert held <= 3, by
        finally:
            release.set()
        async with asyncio.timeout(5_000 * MS):
            assert await primer == "slow"
            await asyncio.gather(*clients)
        assert by["slow"] == held - 1


async def test_time_balanced_prefers_the_faster_responder(disc: DiscoveryFactory) -> None:
    async with (
        _worker("fast", disc, 1 * MS),
        _worker("slow", disc, 50 * MS),
        TimeBalancedRequester("tb", discovery=disc(), timeout=10_000 * MS) as req,
    ):
        await req.wait_connected(2, timeout=5_000 * MS)
        by = Counter([(await req.send({"type": "work"}))["by"] for _ in range(40)])
        assert by["fast"] + by["slow"] == 40
        assert by["fast"] >= 30, by  # only the periodic exploration goes to "slow"


async def test_subset_routes_only_to_matching_responders(disc: DiscoveryFactory) -> None:
    async with (
        _worker("a", disc, 0, advertisement={"subset": "blue"}),
        _worker("b", disc, 0, advertisement={"subset": "green"}),
        Requester("sub", discovery=disc(), timeout=5_000 * MS) as req,
    ):
        await req.wait_connected(2, timeout=5_000 * MS)
        replies = [await req.send({"type": "work", "__subset": "green"}) for _ in range(6)]
        assert {r["by"] for r in replies} == {"b"}
        # As in cote, __subset is removed before sending.
        assert all(r["saw"] == ["type"] for r in replies)
        plain = [(await req.send({"type": "work"}))["by"] for _ in range(6)]
        assert set(plain) == {"a", "b"}
