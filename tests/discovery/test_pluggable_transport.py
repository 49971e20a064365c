"""Discovery media are pluggable: a component takes any ``DiscoveryTransport``.

The medium here is an in-process bus (every datagram reaches every member),
the sort of thing a user would write for, say, a message broker. Links and
requests still go over real TCP.
"""

from __future__ import annotations

from coterie import DiscoveryTransport, Requester, Responder
from coterie.discovery.options import DiscoverySettings
from coterie.discovery.transports import ReceiveCallback
from tests.helpers import MS, fast_discovery


class Bus:
    """An in-process broadcast medium."""

    def __init__(self) -> None:
        self.members: list[BusTransport] = []
        self.datagrams = 0

    def factory(self, settings: DiscoverySettings) -> DiscoveryTransport:
        return BusTransport(self)


class BusTransport:
    def __init__(self, bus: Bus) -> None:
        self.bus = bus
        self.receive: ReceiveCallback | None = None

    async def start(self, receive: ReceiveCallback) -> None:
        self.receive = receive
        self.bus.members.append(self)

    def send(self, data: bytes) -> None:
        self.bus.datagrams += 1
        for member in list(self.bus.members):
            if member.receive is not None:
                member.receive(data, "127.0.0.1")

    async def close(self) -> None:
        self.bus.members.remove(self)


async def test_components_find_each_other_over_a_custom_medium() -> None:
    bus = Bus()
    # The UDP port is never bound: prove it by pointing it at a nonsense value
    # that would fail to bind if the default transport were used.
    disc = fast_discovery(address="203.0.113.1")
    async with Responder("bus rep", discovery=disc, transport_factory=bus.factory) as rep:
        rep.on("ping", lambda req: "pong")
        async with Requester(
            "bus req", discovery=disc, transport_factory=bus.factory, timeout=5_000 * MS
        ) as req:
            assert await req.send({"type": "ping"}) == "pong"
            # Same settings, same medium: the process's components share one transport.
            assert len(bus.members) == 1
            assert rep.discovery is not None and rep.discovery.sharing == 2
    assert bus.members == []  # both closed their transport
    assert bus.datagrams >= 2
