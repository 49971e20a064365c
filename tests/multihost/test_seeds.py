"""DNS seeds against a real DNS server whose records change while the mesh runs.

dnsmasq runs on the router and answers ``mesh.bed.test`` from a hosts file;
every bed host's ``/etc/resolv.conf`` names the router and the search domain
``bed.test``, so coterie resolves the seed ``mesh`` with the system resolver
(``loop.getaddrinfo``), as a pod resolves a headless Service's short name.
Editing the file and sending SIGHUP changes the A records: a new one joins
the mesh (across the router: unicast hellos are routed), a removed one is
dropped though its node still runs. Node cote takes part in node-discover's
unicast mode, listing a coterie host.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from tests.bed import Bed
from tests.multihost.conftest import PeerFactory
from tests.multihost.peers import replies_from
from tests.multihost.servers import Dnsmasq

NAME = "mesh"  # mesh.bed.test through the hosts' search domain, as a Service name in a pod
INTERVAL_MS = 200


def _named(name: str) -> Callable[[dict[str, Any]], bool]:
    return lambda event: event["advertisement"].get("name") == name


SEEDED = {"COTERIE_DISCOVERY_SEEDS": NAME, "COTERIE_DISCOVERY_SEED_INTERVAL": str(INTERVAL_MS)}


async def test_the_mesh_follows_dns_records_as_they_change(
    bed: Bed, peer: PeerFactory, dns: Dnsmasq
) -> None:
    a1, a2, a3, b1, b2 = (bed[n] for n in ("a1", "a2", "a3", "b1", "b2"))
    await dns.start({NAME: [a1, a2, a3]})
    rep_a1, req, _, _, node_req = await asyncio.gather(
        peer(a1, "python", "responder", {"name": "rep-a1"}, env=SEEDED),
        peer(a2, "python", "requester", {"name": "req"}, env=SEEDED),
        # node-discover's unicast mode: Node lists the coterie host it knows.
        peer(a3, "node", "responder", {"name": "node-rep",
                                       "discovery": {"unicast": [a2.address]}}),
        peer(b1, "python", "responder", {"name": "rep-b1"}, env=SEEDED),  # not in DNS yet
        peer(b2, "node", "requester", {"name": "node-req", "discovery": {"unicast": [b1.address]}}),
    )  # fmt: skip
    for name in ("rep-a1", "node-rep"):
        await req.wait_for("added", timeout=5, predicate=_named(name))
        await replies_from(req, name)
    # b1 sends its hellos to the seeds, but it is not one of them: ignored.
    assert not req.find("added", _named("rep-b1"))

    # A new A record joins the mesh, across the router.
    joined_at = dns.publish({NAME: [a1, a2, a3, b1, b2]})
    added = await req.wait_for("added", timeout=5, predicate=_named("rep-b1"))
    join_s = added["_rx"] - joined_at
    assert added["address"] == added["connect"] == b1.address
    await replies_from(req, "rep-b1")
    # ... and Node, listing b1, hears the seeded coterie nodes once b2 is a seed.
    await node_req.wait_for("added", timeout=5, predicate=_named("rep-b1"))
    await replies_from(node_req, "rep-b1")

    # A removed record is dropped, though its node still runs.
    left_at = dns.publish({NAME: [a2, a3, b1, b2]})
    removed = await req.wait_for("removed", timeout=5, predicate=_named("rep-a1"))
    leave_s = removed["_rx"] - left_at
    assert rep_a1.proc.returncode is None
    for _ in range(4):
        reply = await req.request({"type": "echo"}, timeout=5)
        assert reply["err"] is None and reply["res"]["by"] != "rep-a1", req.describe()
    status_cmd = {"cmd": "status"}
    await req.send_cmd(status_cmd)
    status = await req.wait_for("status", timeout=5)
    assert status["members"] == sorted(h.address for h in (a2, a3, b1, b2))
    # With a 200 ms interval and dnsmasq's zero TTL, both take about one interval.
    print(f"\nseeds: new record joined in {join_s:.3f} s, removed one dropped in {leave_s:.3f} s")
    assert join_s < 3 and leave_s < 3
