"""The house: each role is shallow; behaviour is shared through parts it holds."""

from __future__ import annotations

import asyncio
import socket
import uuid
from typing import Any

import pytest

from coterie import Monitor, Publisher, Requester, Responder, Subscriber
from coterie.components.base import Component
from coterie.gateways.sockend._spaces import gateway_requester
from coterie.protocol.packets import HELLO, PacketCodec, make_packet
from tests.helpers import HOST_SCOPE, MS, DiscoveryFactory

SOON = 5_000 * MS

ROLES = [Requester, Responder, Publisher, Subscriber, Monitor]


def coterie_classes(cls: type) -> list[str]:
    """The coterie classes in ``cls``'s MRO, itself first."""
    return [c.__qualname__ for c in cls.__mro__ if c.__module__.startswith("coterie")]


@pytest.mark.parametrize("role", ROLES, ids=lambda r: r.__name__)
def test_each_role_has_at_most_three_coterie_classes_in_its_mro(role: type[Component]) -> None:
    mro = coterie_classes(role)
    assert len(mro) <= 3, mro
    assert mro[0] == role.__name__ and mro[-1] == "Component"


def test_the_house_before_and_after() -> None:
    """Before: Requester -> Monitorable -> ConnectingComponent -> Component (4, the gateway's 5)."""
    assert coterie_classes(Requester) == ["Requester", "ConnectingComponent", "Component"]
    assert coterie_classes(Subscriber) == ["Subscriber", "ConnectingComponent", "Component"]
    assert coterie_classes(Responder) == ["Responder", "ListeningComponent", "Component"]


def test_the_sockend_requester_is_a_plain_requester_narrowed_not_a_subclass() -> None:
    requester = gateway_requester("gateway requester", environ={})
    assert type(requester) is Requester
    assert len(coterie_classes(type(requester))) == 3


async def test_the_sockend_requester_drops_a_responder_whose_hello_stops_listing_types(
    disc: DiscoveryFactory, disc_port: int
) -> None:
    """The filter a holder puts on a plain Requester: as cote's Sockend, types listed or gone."""
    accepted: list[asyncio.StreamWriter] = []
    closed = asyncio.Event()

    async def on_link(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)
        await reader.read()  # until the requester closes its end
        closed.set()

    server = await asyncio.start_server(on_link, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    iid = str(uuid.uuid4())
    codec = PacketCodec()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)

    def hello(**fields: Any) -> None:
        adv = {"type": "service", "name": "lister", "axon_type": "rep", "port": port,
               "key": requester.advertisement.get("key"), **fields}  # fmt: skip
        data = {"isMaster": False, "isMasterEligible": False, "weight": 0,
                "address": "127.0.0.1", "advertisement": adv, "id": iid}  # fmt: skip
        sock.sendto(codec.encode(make_packet(HELLO, "forger", iid, "lister", data)),
                    (HOST_SCOPE, disc_port))  # fmt: skip

    requester = gateway_requester("gateway requester", discovery=disc())
    try:
        async with requester:
            hello(respondsTo=["t"])
            await requester.wait_connected(1, timeout=SOON)
            hello()  # no list: a gateway has nothing to show of it
            hello()
            await asyncio.wait_for(closed.wait(), SOON)  # dropped as if it had left
            assert requester.connected == 0
    finally:
        sock.close()
        server.close()
        for writer in accepted:
            writer.close()


def test_internal_types_once_public_on_listeners_are_deprecated_aliases() -> None:
    responder = Responder("r", environ={})
    with pytest.warns(DeprecationWarning, match="admission of a responder.*refused_connections"):
        assert responder.admission is not None
    with pytest.warns(DeprecationWarning, match="budget of a responder.*max_buffered"):
        assert responder.budget is not None
    for name in ("arrived", "want_handshake", "handshake_over"):
        assert callable(getattr(responder, name))  # still there, for one release
