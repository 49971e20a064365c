"""A responder that accepts and never answers (or answers garbage) leaves the rotation.

Real sockets, in one process. The blackhole answers liveness pings, so only
outlier ejection can tell it from a slow responder.
"""

from __future__ import annotations

import asyncio
import collections

from coterie import Requester, Responder
from coterie.protocol.ejection import EJECT_AFTER
from coterie.transport.link import Link
from tests.helpers import MS, DiscoveryFactory

SOON = 5_000 * MS


async def test_a_blackhole_beside_a_real_responder_costs_a_few_attempts(
    disc: DiscoveryFactory,
) -> None:
    forever = asyncio.Event()
    reached = 0
    async with Responder("real", discovery=disc()) as real:
        real.on("work", lambda req: "real")
        async with Requester("client", discovery=disc(), timeout=10) as req:
            await req.wait_connected(1, timeout=SOON)
            for _ in range(5):  # samples for the adaptive attempt bound
                await req.send({"type": "work"})
            async with Responder("blackhole", discovery=disc()) as hole:

                @hole.on("work")
                async def never(req: dict[str, object]) -> str:
                    nonlocal reached
                    reached += 1
                    await forever.wait()
                    return "never"

                await req.wait_connected(2, timeout=SOON)
                answers: collections.Counter[str] = collections.Counter()

                async def one() -> None:
                    answers[await req.send({"type": "work"})] += 1

                await asyncio.wait_for(asyncio.gather(*(one() for _ in range(200))), 10)
                assert answers == {"real": 200}
                assert req.stats().ejections == 1
                assert req.stats().ejected == (hole.id,)
                # Round robin put about half of the first burst there; after
                # the ejection nothing more but (at most) one probe.
                assert 0 < reached <= 101
                forever.set()


async def test_garbage_frames_eject_a_responder(disc: DiscoveryFactory) -> None:
    sent_garbage = 0

    def garble(link: Link, args: list[object]) -> None:
        nonlocal sent_garbage
        sent_garbage += 1
        assert link.transport is not None
        link.transport.write(b"\x11\x00\x00\x00\x05j:{{{")  # an argument that is not JSON

    bad = Responder("garbage", discovery=disc())
    bad._on_frame = garble  # type: ignore[method-assign]  # the attacker's reply path
    async with Responder("real", discovery=disc()) as real, bad:
        real.on("work", lambda req: "real")
        bad.on("work", lambda req: "bad")
        async with Requester("client", discovery=disc(), timeout=10) as req:
            await req.wait_connected(2, timeout=SOON)
            results = await asyncio.wait_for(
                asyncio.gather(*(req.send({"type": "work"}) for _ in range(50))), 10
            )
            assert set(results) == {"real"}
            assert req.stats().ejections == 1
            assert sent_garbage >= EJECT_AFTER
