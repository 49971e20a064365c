"""Discovery per process: one transport, decode and node table for the components alike.

A capturing medium stands for the network where the test feeds datagrams in
by hand; the UDP tests use real sockets on the tests' host scope.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import time
from typing import Any

import pytest

from coterie import Requester, Responder
from coterie.discovery.medium import ReceiveCallback
from coterie.discovery.options import DiscoverySettings
from coterie.discovery.service import Discovery
from coterie.discovery.transports import RECEIVE_BUFFER
from coterie.protocol.packets import GOODBYE, HELLO, PacketCodec, make_packet
from tests.helpers import MS, DiscoveryFactory, wait_for


class Capture:
    """A medium that records what is sent and lets the test deliver datagrams."""

    def __init__(self) -> None:
        self.starts = 0
        self.sent: list[dict[str, Any]] = []
        self.receive: ReceiveCallback | None = None
        self.closed = False

    def factory(self, settings: DiscoverySettings) -> Capture:
        return self

    async def start(self, receive: ReceiveCallback) -> None:
        self.starts += 1
        self.receive = receive

    def send(self, data: bytes) -> None:
        self.sent.append(json.loads(data))

    async def close(self) -> None:
        self.closed = True

    def deliver(self, packet: dict[str, Any], source: str = "127.0.0.9") -> None:
        assert self.receive is not None
        self.receive(PacketCodec().encode(packet), source)

    def hellos_from(self, iid: str) -> int:
        return sum(1 for p in self.sent if p["event"] == HELLO and p["iid"] == iid)


def hello(iid: str, **adv: Any) -> dict[str, Any]:
    advertisement = {"type": "service", "name": iid, "key": "$$", "axon_type": "rep", **adv}
    data = {"isMaster": False, "isMasterEligible": True, "weight": -0.2, "address": "127.0.0.9",
            "advertisement": advertisement, "id": iid, "processId": "pid-" + iid}  # fmt: skip
    return make_packet(HELLO, "pid-" + iid, iid, "host", data)


SETTINGS = DiscoverySettings(hostname="box", log=False)


async def started(medium: Capture, count: int) -> list[Discovery]:
    members = [
        Discovery({"type": "service", "name": f"m{n}"}, SETTINGS, transport_factory=medium.factory)
        for n in range(count)
    ]
    for member in members:
        await member.start()
    return members


async def test_components_alike_share_one_medium_and_table_but_each_says_hello() -> None:
    medium = Capture()
    one, two = await started(medium, 2)
    events: list[tuple[str, str]] = []
    two.on(lambda event, node: events.append((event, node.id)))
    try:
        assert medium.starts == 1 and one.sharing == 2
        assert one.table is two.table
        assert medium.hellos_from(one.iid) == 1 and medium.hellos_from(two.iid) == 1
        # Their own hellos come back over the medium: each sees the other, not itself.
        for packet in list(medium.sent):
            medium.deliver(json.loads(json.dumps(packet)), "127.0.0.1")
        assert set(one.nodes) == {two.iid} and set(two.nodes) == {one.iid}
        assert len(one.nodes) == 1 and one.iid not in one.nodes
        with pytest.raises(KeyError):
            one.nodes[one.iid]
        medium.deliver(hello("peer"))  # one decode, both hear it
        assert "peer" in one.nodes and "peer" in two.nodes
        await one.close()
        # A sibling that leaves is dropped at once, and the medium stays open.
        assert ("removed", one.iid) in events and one.iid not in two.nodes
        assert not medium.closed
        # Its last hello, still in flight, does not bring it back.
        medium.deliver(next(p for p in medium.sent if p["iid"] == one.iid), "127.0.0.1")
        assert one.iid not in two.nodes
    finally:
        await two.close()
    assert medium.closed  # closed with the last component


async def test_a_component_that_joins_late_learns_every_known_node() -> None:
    medium = Capture()
    (first,) = await started(medium, 1)
    medium.deliver(hello("a"))
    medium.deliver(hello("b"))
    late = Discovery(
        {"type": "service", "name": "late"}, SETTINGS, transport_factory=medium.factory
    )
    seen: list[str] = []
    late.on(lambda event, node: seen.append(f"{event} {node.id}"))
    await late.start()
    try:
        assert seen == ["added a", "added b"]
    finally:
        await late.close()
        await first.close()


async def test_fast_contact_is_one_round_per_process_and_never_for_a_returning_node() -> None:
    medium = Capture()
    members = await started(medium, 3)
    try:
        medium.sent.clear()
        medium.deliver(hello("newcomer"))
        await asyncio.sleep(0)
        # One round: every member says hello once (each has its own hello to give).
        assert sorted(p["iid"] for p in medium.sent) == sorted(m.iid for m in members)
        medium.deliver(make_packet(GOODBYE, "pid-newcomer", "newcomer", "host", {"id": "x"}))
        assert "newcomer" not in members[0].nodes
        medium.sent.clear()
        medium.deliver(hello("newcomer"))  # back again: it knew the mesh all along
        await asyncio.sleep(0)
        assert "newcomer" in members[0].nodes and medium.sent == []
    finally:
        for member in members:
            await member.close()


async def test_a_flood_of_newcomers_is_answered_within_one_budget_per_process() -> None:
    medium = Capture()
    members = await started(medium, 3)
    try:
        medium.sent.clear()
        begun = time.monotonic()
        for n in range(2000):
            medium.deliver(hello(f"forged-{n}"))
            if n % 100 == 0:
                await asyncio.sleep(0)
        await asyncio.sleep(0)
        elapsed = time.monotonic() - begun
        rounds = len(medium.sent) / len(members)
        # One budget for the process: a burst of 5 rounds, then 10 a second.
        assert 1 <= rounds <= 5 + 10 * elapsed + 1, (rounds, elapsed)
        assert len(medium.sent) % len(members) == 0  # whole rounds: every member at once
    finally:
        for member in members:
            await member.close()


async def test_a_repeated_hello_is_not_decoded_but_a_changed_one_is() -> None:
    medium = Capture()
    (member,) = await started(medium, 1)
    events: list[str] = []
    member.on(lambda event, node: events.append(event))
    try:
        medium.deliver(hello("a", port=9000))
        first_seen = member.nodes["a"].last_seen
        await asyncio.sleep(10 * MS)
        medium.deliver(hello("a", port=9000))
        assert member.nodes["a"].last_seen > first_seen  # a repeat still counts as alive
        medium.deliver(hello("a", port=9000), "127.0.0.66")  # same bytes, forged source
        assert member.table.ignored["address"] == 1
        medium.deliver(hello("a", port=9000, respondsTo=["x"]))
        assert events == ["added", "updated"]
        assert member.nodes["a"].advertisement["respondsTo"] == ["x"]
    finally:
        await member.close()


async def test_a_full_table_says_so_once_with_the_setting_to_raise(
    caplog: pytest.LogCaptureFixture,
) -> None:
    medium = Capture()
    settings = DiscoverySettings(hostname="box", log=False, max_nodes=3)
    member = Discovery({"type": "service"}, settings, transport_factory=medium.factory)
    await member.start()
    caplog.set_level(logging.WARNING, logger="coterie.discovery")
    try:
        for n in range(6):
            medium.deliver(hello(f"n{n}"))
        assert len(member.nodes) == 3
        warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert warnings == [
            "discovery tracks 3 nodes, its limit: hellos of new nodes are ignored; raise "
            "DiscoveryOptions(max_nodes=...) if the mesh is this large"
        ]
    finally:
        await member.close()


# -- over real sockets ---------------------------------------------------------------------


async def test_udp_components_alike_share_one_socket_that_drains_bursts(
    disc: DiscoveryFactory,
) -> None:
    async with Responder("rep", discovery=disc()) as rep:
        rep.on("ping", lambda req: "pong")
        async with Requester("req", discovery=disc(), timeout=5_000 * MS) as req:
            assert await req.send({"type": "ping"}) == "pong"
            assert rep.discovery is not None and req.discovery is not None
            assert rep.discovery.sharing == 2
            endpoint = rep.discovery._hub.transport._endpoint  # type: ignore[union-attr]
            assert endpoint is not None and len(endpoint.sockets) == 1
            if endpoint.receive_buffer < RECEIVE_BUFFER:
                # Without CAP_NET_ADMIN the kernel's cap applies; it is reported.
                assert endpoint.receive_buffer > 0
            port = rep.discovery_settings.port  # type: ignore[union-attr]
            codec = PacketCodec()
            burst = [codec.encode(hello(f"burst-{n}")) for n in range(300)]
            wakeups, received = endpoint.wakeups, endpoint.received
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
                for datagram in burst:
                    sender.sendto(datagram, ("127.0.0.1", port))
            await wait_for(lambda: len(req.discovery.nodes) >= 301, 2_000 * MS)  # type: ignore[union-attr]
            read = endpoint.received - received
            assert read >= 300
            # Far fewer wake-ups than datagrams: each wake-up drains the socket.
            assert endpoint.wakeups - wakeups < read / 10, (endpoint.wakeups - wakeups, read)


async def test_a_node_whose_link_is_busy_outlives_its_lost_hellos() -> None:
    medium = Capture()
    settings = DiscoverySettings(
        hostname="box", log=False, hello_interval=60_000, check_interval=20, node_timeout=60,
        master_timeout=80,
    )  # fmt: skip
    member = Discovery({"type": "service"}, settings, transport_factory=medium.factory)
    loop = asyncio.get_running_loop()
    member.heard = lambda iid: loop.time() if iid == "busy" else None
    removed: list[str] = []
    member.on(lambda event, node: removed.append(node.id) if event == "removed" else None)
    await member.start()
    try:
        medium.deliver(hello("busy"))
        medium.deliver(hello("idle"))
        await wait_for(lambda: "idle" in removed, 2_000 * MS)
        await asyncio.sleep(200 * MS)  # more than three node timeouts without a hello
        assert "busy" in member.nodes and removed == ["idle"]
    finally:
        await member.close()
