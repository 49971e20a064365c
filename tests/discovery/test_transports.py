"""Discovery over each UDP transport with real sockets: broadcast, unicast, multicast."""

from __future__ import annotations

import os

import pytest

from coterie import DiscoveryOptions, Requester, Responder
from tests import netns

FAST = {"hello_interval": 100, "check_interval": 200, "node_timeout": 400, "master_timeout": 500}


def _port(offset: int) -> int:
    return 30000 + (os.getpid() + offset) % 20000


async def _round_trip(rep_disc: DiscoveryOptions, req_disc: DiscoveryOptions) -> None:
    async with Responder(name="t-rep", discovery=rep_disc) as rep:
        rep.on("echo", lambda req: req["v"])
        async with Requester(name="t-req", discovery=req_disc, timeout=5) as req:
            assert await req.send({"type": "echo", "v": 41}) == 41


async def test_broadcast_host_scope() -> None:
    disc = DiscoveryOptions(broadcast="127.255.255.255", port=_port(1), **FAST)
    await _round_trip(disc, disc)


async def test_unicast_list_between_two_loopback_addresses() -> None:
    # Each node binds its own loopback address and lists both: a unicast mesh.
    port = _port(2)
    peers = ["127.0.0.2", "127.0.0.3"]
    rep = DiscoveryOptions(address="127.0.0.2", unicast=peers, port=port, **FAST)
    req = DiscoveryOptions(address="127.0.0.3", unicast=",".join(peers), port=port, **FAST)
    await _round_trip(rep, req)


async def test_multicast_group() -> None:
    if netns.reason_unavailable is not None:
        pytest.skip(
            f"multicast stays off the LAN only in a private namespace: {netns.reason_unavailable}"
        )
    disc = DiscoveryOptions(multicast="239.1.2.3", port=_port(3), **FAST)
    await _round_trip(disc, disc)
