"""Which address a hello announces, where it goes, and what the options say about it."""

from __future__ import annotations

import asyncio
import ctypes
import ipaddress
import json
import socket
import sys
from typing import Any

import pytest

from coterie import DiscoveryOptions, Requester, Responder
from coterie.discovery import interfaces, transports
from coterie.discovery.interfaces import Interface, ipv4_interfaces, source_address
from coterie.discovery.options import DiscoverySettings
from coterie.discovery.service import Discovery
from coterie.discovery.transports import (
    Encoder,
    Outlet,
    ReceiveCallback,
    UdpTransport,
    lists_interfaces,
    plan_outlets,
)
from tests.helpers import MS, fast_discovery

UP, BROADCAST, LOOPBACK = 0x1, 0x2, 0x8
ETH0 = Interface("eth0", "198.18.1.11", "255.255.255.0", "198.18.1.255", UP | BROADCAST)
ETH1 = Interface("eth1", "198.18.2.11", "255.255.255.0", "198.18.2.255", UP | BROADCAST)
LO = Interface("lo", "127.0.0.1", "255.0.0.0", None, UP | LOOPBACK)
DOWN = Interface("eth2", "198.18.3.11", "255.255.255.0", "198.18.3.255", BROADCAST)
POINT = Interface("tun0", "198.18.4.1", "255.255.255.255", "198.18.4.1", UP | BROADCAST)


def _routes(table: dict[str, str]) -> Any:
    return lambda dest: table.get(dest)


def _plan(interfaces: list[Interface], routes: dict[str, str] | None = None,
          unicast: tuple[str, ...] = (), **options: Any) -> list[Outlet]:  # fmt: skip
    settings = DiscoveryOptions(**options).resolve({"DISCOVERY_HOSTNAME": "box"})
    return plan_outlets(settings, interfaces, _routes(routes or {}), unicast)


# -- where hellos go ---------------------------------------------------------------


def test_the_default_broadcast_goes_out_of_every_interface_naming_it() -> None:
    assert _plan([LO, ETH0, DOWN, POINT, ETH1]) == [
        Outlet("198.18.1.11", (("198.18.1.255", 12345),)),
        Outlet("198.18.2.11", (("198.18.2.255", 12345),)),
    ]


def test_a_second_address_in_the_same_subnet_is_not_a_second_outlet() -> None:
    alias = Interface("eth0", "198.18.1.99", "255.255.255.0", "198.18.1.255", UP | BROADCAST)
    assert _plan([ETH0, alias]) == [Outlet("198.18.1.11", (("198.18.1.255", 12345),))]


def test_without_an_interface_that_broadcasts_it_is_cotes_limited_broadcast() -> None:
    # The tests' private namespace: only lo, 255.255.255.255 routed to it.
    plan = _plan([LO], {"255.255.255.255": "127.0.0.1"})
    assert plan == [Outlet("127.0.0.1", (("255.255.255.255", 12345),))]
    assert _plan([]) == [Outlet("127.0.0.1", (("255.255.255.255", 12345),))]


def test_a_bound_address_picks_its_interface() -> None:
    assert _plan([ETH0, ETH1], address="198.18.2.11") == [
        Outlet("198.18.2.11", (("198.18.2.255", 12345),))
    ]


def test_an_explicit_broadcast_leaves_where_its_route_says() -> None:
    assert _plan([ETH0], {"127.255.255.255": "127.0.0.1"}, broadcast="127.255.255.255") == [
        Outlet("127.0.0.1", (("127.255.255.255", 12345),))
    ]
    assert _plan([ETH0, ETH1], {"198.18.2.255": "198.18.2.11"}, broadcast="198.18.2.255") == [
        Outlet("198.18.2.11", (("198.18.2.255", 12345),))
    ]


def test_multicast_leaves_by_its_route_or_the_bound_address() -> None:
    routes = {"239.1.2.3": "198.18.1.11"}
    assert _plan([ETH0, ETH1], routes, multicast="239.1.2.3") == [
        Outlet("198.18.1.11", (("239.1.2.3", 12345),))
    ]
    assert _plan([ETH0, ETH1], routes, multicast="239.1.2.3", address="198.18.2.11") == [
        Outlet("198.18.2.11", (("239.1.2.3", 12345),))
    ]


def test_unicast_is_grouped_by_the_address_each_route_leaves_from() -> None:
    routes = {"198.18.1.12": "198.18.1.11", "198.18.2.12": "198.18.2.11",
              "198.18.1.13": "198.18.1.11"}  # fmt: skip
    targets = ("198.18.1.12", "198.18.2.12", "198.18.1.13", "10.9.9.9")
    assert _plan([ETH0, ETH1], routes, unicast=targets, port=7) == [
        Outlet("198.18.1.11", (("198.18.1.12", 7), ("198.18.1.13", 7))),
        Outlet("198.18.2.11", (("198.18.2.12", 7),)),
        Outlet("127.0.0.1", (("10.9.9.9", 7),)),  # no route: nothing better to say
    ]


def test_seeds_not_resolved_yet_send_nothing() -> None:
    assert _plan([ETH0], seeds=["mesh.example"]) == []


def test_interfaces_are_listed_only_for_the_limited_broadcast(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Elsewhere the plan does not look at them, so they are not listed (nor ctypes loaded).
    def settings(**options: Any) -> DiscoverySettings:
        return DiscoveryOptions(**options).resolve({"DISCOVERY_HOSTNAME": "box"})

    routes = {
        "127.255.255.255": "127.0.0.1",
        "239.1.2.3": "198.18.1.11",
        "198.18.1.7": "198.18.1.11",
    }
    assert lists_interfaces(settings())
    for options, unicast in (
        ({"broadcast": "127.255.255.255"}, ()),
        ({"multicast": "239.1.2.3"}, ()),
        ({}, ("198.18.1.7",)),
    ):
        assert not lists_interfaces(settings(**options), unicast), options
        assert _plan([ETH0, ETH1], routes, unicast, **options) == _plan(
            [], routes, unicast, **options
        )
    listed: list[int] = []
    monkeypatch.setattr(transports, "ipv4_interfaces", lambda: listed.append(1) or [ETH0])
    assert UdpTransport(settings(broadcast="127.255.255.255")).outlets()[0].address == "127.0.0.1"
    assert UdpTransport(settings(unicast=["127.0.0.1"])).outlets()[0].address == "127.0.0.1"
    assert listed == []
    assert UdpTransport(settings()).outlets() == [Outlet("198.18.1.11", (("198.18.1.255", 12345),))]
    assert listed == [1]


@pytest.mark.parametrize(
    "text",
    ["198.18.1.7", "0.0.0.0", "255.255.255.255", "010.1.1.1", "1.2.3", "256.1.1.1", "1.2.3.4 ",
     "0x7f.1.1.1", "\u0663.1.1.1", "1.2.3.4\x00", "::1", "svc.example", ""],
)  # fmt: skip
def test_an_ipv4_address_is_recognised_as_ipaddress_does(text: str) -> None:
    try:
        ipaddress.IPv4Address(text)
    except ValueError:
        expected = False
    else:
        expected = True
    assert transports._is_ipv4(text) is expected


def test_this_hosts_interfaces_and_routes_are_read() -> None:
    found = ipv4_interfaces()
    assert any(i.address == "127.0.0.1" and i.loopback for i in found)
    assert source_address("127.0.0.1", 9) == "127.0.0.1"
    assert source_address("127.255.255.255", 9) == "127.0.0.1"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux's libc names")
def test_interfaces_are_read_where_libc_is_not_libc_so_6(monkeypatch: pytest.MonkeyPatch) -> None:
    # musl (Alpine) has no library named libc.so.6: only the process's own
    # symbols (CDLL(None)) find getifaddrs there.
    real = ctypes.CDLL

    def musl(name: str | None, *args: Any, **kwargs: Any) -> ctypes.CDLL:
        if name is not None and "libc" in name:
            raise OSError(f"{name}: cannot open shared object file: No such file or directory")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(ctypes, "CDLL", musl)
    interfaces._libc.cache_clear()
    try:
        assert any(i.address == "127.0.0.1" and i.loopback for i in ipv4_interfaces())
    finally:
        interfaces._libc.cache_clear()


# -- what a hello says -----------------------------------------------------------------


class TwoLegged:
    """A transport with two outlets, as on a host with two interfaces."""

    def __init__(self, settings: DiscoverySettings) -> None:
        self.sent: list[tuple[str, dict[str, Any]]] = []

    async def start(self, receive: ReceiveCallback) -> None:
        pass

    def send(self, data: bytes) -> None:
        self.sent.append(("*", json.loads(data)))

    def send_each(self, encode: Encoder) -> None:
        for address in ("198.18.1.11", "198.18.2.11"):
            data = encode(address)
            assert data is not None
            self.sent.append((address, json.loads(data)))

    async def close(self) -> None:
        pass


async def _hellos(**options: Any) -> tuple[Discovery, list[tuple[str, dict[str, Any]]]]:
    settings = DiscoveryOptions(**options).resolve({})
    transport: list[TwoLegged] = []

    def factory(s: DiscoverySettings) -> TwoLegged:
        transport.append(TwoLegged(s))
        return transport[0]

    disc = Discovery({"type": "service", "name": "x"}, settings, transport_factory=factory)
    await disc.start()
    await disc.close()
    return disc, [s for s in transport[0].sent if s[1]["event"] == "hello"]


async def test_each_copy_of_a_hello_names_the_address_it_leaves_from() -> None:
    disc, sent = await _hellos(hostname="box")
    assert [(a, h["data"]["address"], h["hostName"]) for a, h in sent] == [
        ("198.18.1.11", "198.18.1.11", "box"),
        ("198.18.2.11", "198.18.2.11", "box"),
    ]
    assert disc.advertised == ("198.18.1.11", "198.18.2.11")


async def test_the_advertise_address_wins_in_every_copy() -> None:
    disc, sent = await _hellos(hostname="box", advertise_address="203.0.113.5")
    assert [(a, h["data"]["address"]) for a, h in sent] == [("*", "203.0.113.5")]
    assert disc.advertised == ("203.0.113.5",)


async def test_with_host_names_and_no_host_name_given_the_host_name_is_the_machines() -> None:
    # What cote sends: cote matches its links to nodes by the name it dialled,
    # and Node keeps no name for an address. coterie peers dial the address.
    _, sent = await _hellos(use_host_names=True)
    assert [(h["hostName"], h["data"]["address"]) for _, h in sent] == [
        (socket.gethostname(), "198.18.1.11"),
        (socket.gethostname(), "198.18.2.11"),
    ]


async def test_a_host_name_given_with_host_names_is_also_the_address() -> None:
    # cote's DISCOVERY_HOSTNAME: "reach me there"; coterie peers honour it too.
    _, sent = await _hellos(use_host_names=True, hostname="svc.example")
    assert [(h["hostName"], h["data"]["address"]) for _, h in sent] == [
        ("svc.example", "svc.example")
    ]


# -- options -------------------------------------------------------------------------


def test_address_and_seed_variables() -> None:
    s = DiscoveryOptions().resolve({"COTERIE_ADVERTISE_ADDRESS": " 10.1.2.3 ",
                                    "COTERIE_DISCOVERY_SEEDS": "mesh.ns.svc, 10.0.0.7,",
                                    "COTERIE_DISCOVERY_SEED_INTERVAL": "250"})  # fmt: skip
    assert s.advertise_address == "10.1.2.3"
    assert s.seeds == ("mesh.ns.svc", "10.0.0.7") and s.seed_interval == 250
    assert s.scope == "unicast mesh.ns.svc,10.0.0.7"
    assert DiscoveryOptions(seeds="a,b", advertise_address="h").resolve({}).seeds == ("a", "b")
    assert DiscoveryOptions(seeds=["a"]).resolve({"COTERIE_DISCOVERY_SEEDS": "b"}).seeds == ("a",)
    plain = DiscoveryOptions().resolve({})
    assert plain.advertise_address is None and plain.seeds == () and plain.seed_interval == 5000
    assert plain.hostname == socket.gethostname()


@pytest.mark.parametrize(
    ("options", "env", "message"),
    [
        ({"seeds": ["x"], "redis": "redis://r"}, {}, "seeds are for UDP"),
        ({"seed_interval": 0}, {}, "seed_interval"),
        ({"advertise_address": "0.0.0.0"}, {}, "advertise_address"),
        ({}, {"COTERIE_DISCOVERY_SEED_INTERVAL": "soon"}, "COTERIE_DISCOVERY_SEED_INTERVAL"),
    ],
)
def test_bad_address_and_seed_options(
    options: dict[str, Any], env: dict[str, str], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        DiscoveryOptions(**options).resolve(env)


# -- one process, several components, unicast ------------------------------------------


async def test_every_component_of_a_process_hears_unicast_hellos(disc_port: int) -> None:
    # A unicast datagram reaches one socket of a port; the components of a
    # process share theirs in unicast mode, so all of them hear it.
    def unicast() -> DiscoveryOptions:
        return fast_discovery(disc_port, unicast=["127.0.0.1"])

    async with Responder("rep", discovery=unicast()) as rep:
        rep.on("echo", lambda req: req["v"])
        async with (
            Requester("one", discovery=unicast(), timeout=5_000 * MS) as one,
            Requester("two", discovery=unicast(), timeout=5_000 * MS) as two,
        ):
            assert await asyncio.gather(
                one.send({"type": "echo", "v": 1}), two.send({"type": "echo", "v": 2})
            ) == [1, 2]
