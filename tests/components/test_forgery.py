"""Forged discovery datagrams cannot steer the mesh (real sockets, host scope).

The forger sends from 127.0.0.2, standing for another host on the LAN, or
spoofs the victim's own address (127.0.0.1). It knows the victim's id and
advertisement, which plaintext hellos reveal to anyone.
"""

from __future__ import annotations

import asyncio
import collections
import socket
from typing import Any

import pytest

from coterie import Requester, Responder
from coterie.discovery.service import PROCESS_ID
from coterie.protocol.packets import GOODBYE, HELLO, PacketCodec, make_packet
from tests.helpers import HOST_SCOPE, MS, DiscoveryFactory

SOON = 5_000 * MS


class Forger:
    """Sends hand-made discovery datagrams from a chosen source address."""

    def __init__(self, port: int, source: str) -> None:
        self.port = port
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        self.sock.bind((source, 0))
        self.codec = PacketCodec()

    def send(self, packet: dict[str, Any]) -> None:
        self.sock.sendto(self.codec.encode(packet), (HOST_SCOPE, self.port))

    def goodbye(self, iid: str) -> None:
        self.send(make_packet(GOODBYE, PROCESS_ID, iid, "forger", {"id": iid}))

    def hello(self, iid: str, advertisement: dict[str, Any]) -> None:
        data = {
            "isMaster": False,
            "isMasterEligible": True,
            "weight": -0.1,
            "address": "127.0.0.1",
            "advertisement": advertisement,
            "id": iid,
            "processId": PROCESS_ID,
        }
        self.send(make_packet(HELLO, PROCESS_ID, iid, "forger", data))

    def close(self) -> None:
        self.sock.close()


#: cote's own timings: a real hello every 2 s, forgeries 20 times a second.
COTE_TIMINGS = {
    "hello_interval": 2000,
    "check_interval": 4000,
    "node_timeout": 5000,
    "master_timeout": 6000,
}


async def _under_attack(
    disc: DiscoveryFactory, attack: Any, *, seconds: float = 1.0
) -> tuple[collections.Counter[str], int, list[str]]:
    """Requests for ``seconds`` while ``attack(responder)`` runs 20 times a second."""
    events: list[str] = []
    async with Responder("validator", discovery=disc(**COTE_TIMINGS)) as rep:
        rep.on("validate", lambda req: "ok")
        async with Requester("payments", discovery=disc(**COTE_TIMINGS), timeout=SOON) as req:
            req.on_node(lambda event, node: events.append(event))
            await req.wait_connected(1, timeout=SOON)
            results: collections.Counter[str] = collections.Counter()
            stop = asyncio.get_running_loop().time() + seconds

            async def attacker() -> None:
                while asyncio.get_running_loop().time() < stop:
                    attack(rep)
                    await asyncio.sleep(50 * MS)

            async def client() -> None:
                while asyncio.get_running_loop().time() < stop:
                    try:
                        results[await req.send({"type": "validate"}, timeout=0.5)] += 1
                    except TimeoutError:
                        results["timeout"] += 1

            await asyncio.gather(attacker(), *(client() for _ in range(10)))
            links = req.connected
    print(f"\n  under attack for {seconds} s: {dict(results)}, links {links}")
    return results, links, events


@pytest.mark.parametrize("source", ["127.0.0.2", "127.0.0.1"], ids=["other-host", "spoofed"])
async def test_forged_goodbyes_do_not_drop_a_responder(
    disc: DiscoveryFactory, disc_port: int, source: str
) -> None:
    forger = Forger(disc_port, source)
    try:
        results, links, events = await _under_attack(disc, lambda rep: forger.goodbye(rep.id))
    finally:
        forger.close()
    assert results["timeout"] == 0
    assert results["ok"] > 100
    assert links == 1 and "removed" not in events


async def test_a_forged_hello_reusing_an_id_does_not_replace_the_node(
    disc: DiscoveryFactory, disc_port: int
) -> None:
    forger = Forger(disc_port, "127.0.0.2")

    def forge(rep: Responder) -> None:
        forger.hello(rep.id, {**rep.advertisement, "respondsTo": ["nothing-useful"]})

    try:
        results, links, _ = await _under_attack(disc, forge)
    finally:
        forger.close()
    assert results["timeout"] == 0 and results["ok"] > 100 and links == 1


async def test_a_forged_hello_spoofing_a_linked_responder_does_not_change_its_types(
    disc: DiscoveryFactory, disc_port: int
) -> None:
    """Issue 17 item 1: the forger spoofs the responder's own address and id.

    Its hellos say the responder serves nothing; while the requester holds a
    live link to it, routing keeps what the link verified.
    """
    forger = Forger(disc_port, "127.0.0.1")

    def forge(rep: Responder) -> None:
        forger.hello(rep.id, {**rep.advertisement, "respondsTo": []})

    try:
        quiet, _, _ = await _under_attack(disc, lambda rep: None)
        results, links, _ = await _under_attack(disc, forge)
    finally:
        forger.close()
    ratio = results["ok"] / max(1, quiet["ok"])
    print(f"  20 forgeries a second: {results['ok']} answered against {quiet['ok']} ({ratio:.2f}x)")
    assert results["timeout"] == 0 and links == 1
    assert ratio >= 0.5  # the goal is 0.9 (docs/security.md); this bounds the noise


async def test_a_linked_responders_new_type_reaches_the_requester_over_the_link(
    disc: DiscoveryFactory,
) -> None:
    """Its own changes still count: they travel on the link (and in its hello)."""
    async with Responder("validator", discovery=disc(**COTE_TIMINGS)) as rep:
        rep.on("validate", lambda req: "ok")
        async with Requester("payments", discovery=disc(**COTE_TIMINGS), timeout=SOON) as req:
            assert await req.send({"type": "validate"}) == "ok"
            rep.on("refund", lambda req: "refunded")  # no hello for 2 s
            assert await req.send({"type": "refund"}, timeout=500 * MS) == "refunded"
