"""Seeds: resolution that never blocks the loop, and a mesh that follows what they resolve to.

The real DNS server is in ``tests/multihost/test_seeds.py`` (dnsmasq in the
bed); here the resolver is the host's (``/etc/hosts``) or a stand-in.
"""

from __future__ import annotations

import asyncio
import json
import socket
from typing import Any

import pytest

from coterie import Requester, Responder
from coterie.discovery import lookups as seeds_module
from coterie.discovery.lookups import SeedSet, record, resolve_seed
from coterie.discovery.options import DiscoveryOptions, DiscoverySettings
from coterie.discovery.service import Discovery
from coterie.discovery.transports import ReceiveCallback
from coterie.protocol.packets import PacketCodec, make_packet
from tests.helpers import MS, fast_discovery, wait_for


async def test_an_address_is_its_own_answer_and_names_go_to_the_resolver() -> None:
    assert await resolve_seed("10.0.0.7", 1, 1.0) == ("10.0.0.7",)
    assert await resolve_seed("localhost", 1, 5.0) == ("127.0.0.1",)


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (socket.gaierror(socket.EAI_NONAME, "no such name"), ()),
        (socket.gaierror(socket.EAI_AGAIN, "try again"), None),
        (OSError("unreachable"), None),
    ],
)
async def test_an_empty_answer_is_not_a_failed_lookup(
    monkeypatch: pytest.MonkeyPatch, error: Exception, expected: tuple[str, ...] | None
) -> None:
    async def fail(*args: Any, **kwargs: Any) -> Any:
        raise error

    monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", fail)
    assert await resolve_seed("mesh.example", 1, 1.0) == expected


async def test_a_slow_resolver_is_a_failed_lookup(monkeypatch: pytest.MonkeyPatch) -> None:
    async def slow(*args: Any, **kwargs: Any) -> Any:
        await asyncio.sleep(10)

    monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", slow)
    assert await resolve_seed("mesh.example", 1, 0.01) is None


def test_a_failed_lookup_keeps_the_last_answer(caplog: pytest.LogCaptureFixture) -> None:
    seeds = SeedSet(["a.example", "b.example"], static=["10.0.0.9"])
    record(seeds, "a.example", ("10.0.0.1", "10.0.0.2"))
    record(seeds, "b.example", ("10.0.0.2", "10.0.0.3"))
    assert seeds.addresses == ("10.0.0.1", "10.0.0.2", "10.0.0.3")
    record(seeds, "a.example", None)
    record(seeds, "a.example", None)
    assert seeds.addresses == ("10.0.0.1", "10.0.0.2", "10.0.0.3")
    assert [r.message for r in caplog.records].count(
        "seed a.example: lookup failed; keeping its last addresses (10.0.0.1, 10.0.0.2)"
    ) == 1
    record(seeds, "a.example", ())  # the name has no address any more
    assert seeds.addresses == ("10.0.0.2", "10.0.0.3")
    assert seeds.members == {"10.0.0.2", "10.0.0.3", "10.0.0.9"}


# -- the service with seeds --------------------------------------------------------------


class UnicastTransport:
    def __init__(self, settings: DiscoverySettings) -> None:
        self.sent: list[bytes] = []
        self.unicast: tuple[str, ...] = ()
        self.receive: ReceiveCallback | None = None

    async def start(self, receive: ReceiveCallback) -> None:
        self.receive = receive

    def send(self, data: bytes) -> None:
        self.sent.append(data)

    def set_unicast(self, addresses: tuple[str, ...]) -> None:
        self.unicast = tuple(addresses)

    async def close(self) -> None:
        self.receive = None


def _hello(iid: str, address: str) -> bytes:
    data = {"address": address, "advertisement": {"type": "service", "name": iid}}
    return PacketCodec().encode(make_packet("hello", "pid-" + iid, iid, "h", data))


async def test_the_mesh_follows_the_seeds(monkeypatch: pytest.MonkeyPatch) -> None:
    answers: dict[str, tuple[str, ...] | None] = {"mesh.example": ("10.0.0.1", "10.0.0.2")}

    async def resolve(seed: str, port: int, timeout: float) -> tuple[str, ...] | None:
        return answers[seed]

    monkeypatch.setattr(seeds_module, "resolve_seed", resolve)
    made: list[UnicastTransport] = []

    def factory(s: DiscoverySettings) -> UnicastTransport:
        made.append(UnicastTransport(s))
        return made[0]

    settings = DiscoveryOptions(seeds=["mesh.example"], seed_interval=10, hostname="me",
                                hello_interval=60_000, check_interval=60_000,
                                node_timeout=60_000, master_timeout=60_000).resolve({})  # fmt: skip
    disc = Discovery({"type": "service", "name": "me"}, settings, transport_factory=factory)
    events: list[tuple[str, str]] = []
    disc.on(lambda event, node: events.append((event, node.id)))
    await disc.start()
    transport = made[0]
    try:
        # The first hello went to the seeds, resolved before it.
        assert transport.unicast == ("10.0.0.1", "10.0.0.2") and len(transport.sent) == 1
        assert disc.members == {"10.0.0.1", "10.0.0.2"}
        assert transport.receive is not None
        transport.receive(_hello("one", "10.0.0.1"), "10.0.0.1")
        transport.receive(_hello("stranger", "10.0.0.66"), "10.0.0.66")  # not a seed
        transport.receive(_hello("natted", "10.0.0.2"), "172.17.0.1")  # announced a seed
        assert events == [("added", "one"), ("added", "natted")]

        answers["mesh.example"] = ("10.0.0.2", "10.0.0.66")  # one record gone, one new
        sent = len(transport.sent)
        await wait_for(lambda: transport.unicast == ("10.0.0.2", "10.0.0.66"))
        assert ("removed", "one") in events and "one" not in disc.nodes
        assert len(transport.sent) > sent  # the newcomer is greeted at once
        transport.receive(_hello("stranger", "10.0.0.66"), "10.0.0.66")
        assert events[-1] == ("added", "stranger")

        answers["mesh.example"] = None  # DNS down: nothing changes
        await asyncio.sleep(0.05)
        assert transport.unicast == ("10.0.0.2", "10.0.0.66")
        assert set(disc.nodes) == {"natted", "stranger"}
    finally:
        await disc.close()
    assert json.loads(transport.sent[-1])["event"] == "goodbye"


async def test_seeds_from_the_hosts_file_make_a_mesh(disc_port: int) -> None:
    # localhost resolves through /etc/hosts; every component of this process
    # shares the unicast socket, so they all hear each other.
    def seeded() -> DiscoveryOptions:
        return fast_discovery(disc_port, seeds=["localhost"], seed_interval=100)

    async with Responder("rep", discovery=seeded()) as rep:
        rep.on("echo", lambda req: req["v"])
        async with Requester("req", discovery=seeded(), timeout=5_000 * MS) as req:
            assert await req.send({"type": "echo", "v": 7}) == 7
            assert req.discovery is not None and req.discovery.members == {"127.0.0.1"}
