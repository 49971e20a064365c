"""Discovery over each UDP transport with real sockets: broadcast, unicast, multicast."""

from __future__ import annotations

import pytest

from coterie import DiscoveryOptions, Requester, Responder
from tests import netns
from tests.helpers import MS, DiscoveryFactory, fast_discovery


async def _round_trip(rep_disc: DiscoveryOptions, req_disc: DiscoveryOptions) -> None:
    async with Responder(name="t-rep", discovery=rep_disc) as rep:
        rep.on("echo", lambda req: req["v"])
        async with Requester(name="t-req", discovery=req_disc, timeout=5_000 * MS) as req:
            assert await req.send({"type": "echo", "v": 41}) == 41


async def test_broadcast_host_scope(disc: DiscoveryFactory) -> None:
    await _round_trip(disc(), disc())


async def test_unicast_list_between_two_loopback_addresses(disc_port: int) -> None:
    # Each node binds its own loopback address and lists both: a unicast mesh.
    peers = ["127.0.0.2", "127.0.0.3"]
    rep = fast_discovery(disc_port, address="127.0.0.2", unicast=peers)
    req = fast_discovery(disc_port, address="127.0.0.3", unicast=",".join(peers))
    await _round_trip(rep, req)


async def test_multicast_group() -> None:
    if netns.reason_unavailable is not None:
        pytest.skip(
            f"multicast stays off the LAN only in a private namespace: {netns.reason_unavailable}"
        )
    disc = fast_discovery(multicast="239.1.2.3")
    await _round_trip(disc, disc)
