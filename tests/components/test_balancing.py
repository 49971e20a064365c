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
    async with (
        _worker("fast", disc, 1 * MS),
        _worker("slow", disc, 200 * MS),
        PendingBalancedRequester("pb", discovery=disc(), timeout=10_000 * MS) as req,
    ):
        await req.wait_connected(2, timeout=5_000 * MS)
        by: Counter[str] = Counter()

        async def client() -> None:
            for _ in range(10):
                by[(await req.send({"type": "work"}))["by"]] += 1

        await asyncio.gather(*(client() for _ in range(4)))
        # Round robin would split 20/20; the slow one holds its requests long,
        # so new ones go to the fast one.
        assert by["fast"] + by["slow"] == 40
        assert by["fast"] >= 30, by


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
