"""Broadcast discovery between hosts of one segment, coterie and Node cote together.

Every host broadcasts with cote's defaults (255.255.255.255, port 12345): the
bed's segments are LANs of their own, and broadcasts stop at the router
(``tests/multihost/test_bed.py``).
"""

from __future__ import annotations

import asyncio

from tests.bed import Bed
from tests.multihost.conftest import PeerFactory


async def test_python_and_node_pair_both_ways_across_hosts(bed: Bed, peer: PeerFactory) -> None:
    # key k1: Node requester -> coterie responder; key k2: coterie requester -> Node responder.
    py_rep, node_rep, node_req, py_req = await asyncio.gather(
        peer("a1", "python", "responder", {"name": "py-rep", "key": "k1"}),
        peer("a2", "node", "responder", {"name": "node-rep", "key": "k2"}),
        peer("a3", "node", "requester", {"name": "node-req", "key": "k1"}),
        peer("a3", "python", "requester", {"name": "py-req", "key": "k2"}),
    )

    a1 = bed["a1"]
    assert py_rep.ready is not None and py_rep.ready["advertised"] == [a1.address]
    reply = await node_req.request({"type": "echo", "n": 1}, timeout=5)
    assert reply["err"] is None and reply["res"]["by"] == "py-rep", node_req.describe()
    seen = await node_req.wait_for("added", timeout=1)
    assert seen["address"] == a1.address  # cote dials the source address

    reply = await py_req.request({"type": "echo", "n": 2}, timeout=5)
    assert reply["err"] is None and reply["res"]["by"] == "node-rep", py_req.describe()
    seen = await py_req.wait_for("added", timeout=1)
    # node-discover announces 127.0.0.1 whatever the truth: coterie ignores it.
    assert seen["advertised"] == "127.0.0.1"
    assert seen["connect"] == bed["a2"].address
    assert py_rep.find("request") and node_rep.find("request")


async def test_a_host_on_two_segments_announces_each_interface_on_its_own(
    bed: Bed, peer: PeerFactory
) -> None:
    # The router sits on both segments and has no default route: coterie
    # broadcasts on each interface, each hello naming that interface's address.
    router = bed.router
    rep = await peer(router, "python", "responder", {"name": "two-legs"})
    assert rep.ready is not None
    assert sorted(rep.ready["advertised"]) == sorted(router.addresses.values())
    req_a, req_b, node_req = await asyncio.gather(
        peer("a1", "python", "requester", {"name": "req-a"}),
        peer("b1", "python", "requester", {"name": "req-b"}),
        peer("b2", "node", "requester", {"name": "node-req-b"}),
    )
    for req, segment in ((req_a, "a"), (req_b, "b")):
        added = await req.wait_for("added", timeout=5)
        assert added["advertised"] == bed.gateway(segment)
        reply = await req.request({"type": "echo"}, timeout=5)
        assert reply["err"] is None, req.describe()
    reply = await node_req.request({"type": "echo"}, timeout=5)
    assert reply["err"] is None and reply["res"]["by"] == "two-legs", node_req.describe()


async def test_the_advertised_address_overrides_the_source(bed: Bed, peer: PeerFactory) -> None:
    # As behind NAT or in a container: the address to dial is not the one
    # hellos leave from. a1 gets a second address and announces that one.
    a1 = bed["a1"]
    extra = "198.18.1.111"
    a1.ip(f"addr add {extra}/32 dev eth0")
    try:
        await peer(
            a1, "python", "responder", {"name": "natted"}, env={"COTERIE_ADVERTISE_ADDRESS": extra}
        )
        req = await peer("a2", "python", "requester", {"name": "req"})
        added = await req.wait_for("added", timeout=5)
        assert added["address"] == a1.address
        assert added["advertised"] == extra and added["connect"] == extra
        reply = await req.request({"type": "echo"}, timeout=5)
        assert reply["err"] is None, req.describe()
    finally:
        a1.ip(f"addr del {extra}/32 dev eth0")


async def test_a_node_bound_to_its_address_still_hears_broadcasts(
    bed: Bed, peer: PeerFactory
) -> None:
    # Linux gives no broadcast to a socket bound to a unicast address; coterie
    # listens on the interface's broadcast address and 255.255.255.255 too.
    a1 = bed["a1"]
    req = await peer(
        a1, "python", "requester", {"name": "bound", "discovery": {"address": a1.address}}
    )
    assert req.ready is not None and req.ready["advertised"] == [a1.address]
    await asyncio.gather(
        peer("a2", "python", "responder", {"name": "py-rep"}),  # directed broadcast
        peer("a3", "node", "responder", {"name": "node-rep"}),  # 255.255.255.255
    )
    await req.send_cmd({"cmd": "wait_linked", "count": 2, "timeout": 5000})
    linked = await req.wait_for("linked", timeout=8)
    assert linked["count"] == 2 and not linked.get("timeout"), req.describe()
    names = set()
    for _ in range(4):
        reply = await req.request({"type": "echo"}, timeout=5)
        assert reply["err"] is None, req.describe()
        names.add(reply["res"]["by"])
    assert names == {"py-rep", "node-rep"}
