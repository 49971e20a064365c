"""Idle connections from one address cannot lock legitimate peers out (issue 17 item 2).

Real sockets on loopback. The attacker connects from 127.0.0.2, standing for
another host of the LAN; the legitimate requester connects from 127.0.0.1.
Every attacking link sends one ping, so the idle timeout does not close it:
such links would otherwise hold the link cap for ever.
"""

from __future__ import annotations

import asyncio
import logging

import pytest

from coterie import Requester, Responder
from coterie.protocol.liveness import ping_frame
from tests.helpers import MS, DiscoveryFactory

SOON = 5_000 * MS
ATTACKER = "127.0.0.2"
FLOOD = 1_500


async def _flood(port: int, count: int) -> list[asyncio.StreamWriter]:
    """``count`` links from :data:`ATTACKER`, each sending one ping, then nothing."""
    writers: list[asyncio.StreamWriter] = []

    async def one(i: int) -> None:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(ATTACKER, 0))
        except OSError:
            return
        writers.append(writer)
        writer.write(ping_frame(i))

    for start in range(0, count, 250):
        await asyncio.gather(*(one(i) for i in range(start, min(count, start + 250))))
    return writers


async def test_a_flood_of_idle_links_from_one_address_does_not_lock_out_a_requester(
    disc: DiscoveryFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="coterie")
    async with Responder("victim", discovery=disc()) as rep:
        rep.on("work", lambda req: "done")
        writers = await _flood(rep.port, FLOOD)
        try:
            attackers = sum(1 for link in rep.links if link.peer.startswith(ATTACKER))
            loop = asyncio.get_running_loop()
            started = loop.time()
            async with Requester("legit", discovery=disc()) as req:
                try:
                    answer = await req.send({"type": "work"}, timeout=2_000 * MS)
                except TimeoutError:
                    answer = "timed out"
                took = loop.time() - started
            print(
                f"\n  {FLOOD} idle links from {ATTACKER}: {attackers} held, "
                f"{rep.refused_connections} refused; legit requester: {answer!r} "
                f"after {took * 1000:.0f} ms"
            )
            assert answer == "done"
            assert took < 1.0
            # One source holds at most its share of the cap.
            assert attackers <= rep.max_per_source
            # Refusals are logged, but a flood is not a flood of log lines.
            refusals = [r for r in caplog.records if "refused a link" in r.getMessage()]
            assert 1 <= len(refusals) <= 20, len(refusals)
        finally:
            for writer in writers:
                writer.close()


async def test_idle_links_from_many_addresses_make_room_for_a_requester(
    disc: DiscoveryFactory,
) -> None:
    """Eight addresses, each under its share, fill the cap: the oldest idle link goes."""
    async with Responder("victim", discovery=disc(), max_connections=64) as rep:
        rep.on("work", lambda req: "done")
        writers: list[asyncio.StreamWriter] = []
        for host in range(2, 10):  # 8 x 12 = 96 links for a cap of 64
            for _ in range(12):
                _, writer = await asyncio.open_connection(
                    "127.0.0.1", rep.port, local_addr=(f"127.0.0.{host}", 0)
                )
                writers.append(writer)
        try:
            async with Requester("legit", discovery=disc()) as req:
                answer = await req.send({"type": "work"}, timeout=1_000 * MS)
                assert answer == "done"
                # The requester's link has served a request: a new flood cannot evict it.
                legit = [link for link in rep.links if link.source == "127.0.0.1"]
                assert len(legit) == 1 and legit[0].proven
                for host in range(10, 18):
                    for _ in range(10):
                        _, writer = await asyncio.open_connection(
                            "127.0.0.1", rep.port, local_addr=(f"127.0.0.{host}", 0)
                        )
                        writers.append(writer)
                assert await req.send({"type": "work"}, timeout=1_000 * MS) == "done"
                assert legit[0] in rep.links
            assert rep.evicted_connections >= 96 + 80 - 64
        finally:
            for writer in writers:
                writer.close()
