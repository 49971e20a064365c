"""The Sockend's namespaces have a life cycle: forged ones are capped and closed when idle.

A forger sends hello datagrams (built with :mod:`coterie.protocol.packets`)
for responders in namespaces of its own making, on the test's discovery port
in host scope; their port has nothing listening. A plain UDP socket on the
same port counts every hello and goodbye, so what the Sockend's requesters
send is observed from outside, the way the attack was measured.

Fast discovery: hellos every 100 MS, checks every 200 MS, nodes dropped
after 400 MS of silence.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import pytest

pytest.importorskip("socketio")

from coterie.gateways.sockend import Sockend
from coterie.protocol.packets import HELLO, PacketCodec, make_packet
from tests.gateways.test_sockend import (
    SOON,
    adder,
    call,
    client,
    error_code,
    gateway,
)
from tests.helpers import FAST_TIMINGS, HOST_SCOPE, MS, free_port, wait_for
from tests.helpers import DiscoveryFactory as Disc

HELLO_INTERVAL = FAST_TIMINGS["hello_interval"] * MS
CHECK_INTERVAL = FAST_TIMINGS["check_interval"] * MS
NODE_TIMEOUT = FAST_TIMINGS["node_timeout"] * MS
#: Time for closing a requester and for a busy loop, beyond the rule's bound.
SLACK = 300 * MS


@dataclass
class Heard:
    at: float
    event: str
    iid: str
    namespace: Any
    role: Any


class Ear(asyncio.DatagramProtocol):
    """Every discovery packet on the port, decoded, with the time it arrived."""

    def __init__(self) -> None:
        self.codec = PacketCodec()
        self.heard: list[Heard] = []

    def datagram_received(self, data: bytes, addr: Any) -> None:
        try:
            packet = self.codec.decode(data)
        except ValueError:
            return
        adv = packet["data"].get("advertisement") or {}
        self.heard.append(
            Heard(
                asyncio.get_running_loop().time(),
                packet["event"],
                packet["iid"],
                adv.get("namespace"),
                adv.get("axon_type"),
            )
        )


@asynccontextmanager
async def ear(port: int) -> AsyncIterator[Ear]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
    sock.bind(("0.0.0.0", port))
    listener = Ear()
    transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(
        lambda: listener, sock=sock
    )
    try:
        yield listener
    finally:
        transport.close()


class Forger:
    """Announces fake responders, one per namespace, until stopped."""

    def __init__(self, port: int, key: str, namespaces: list[str]) -> None:
        self.port = port
        self.codec = PacketCodec()
        self.nodes = {str(uuid.uuid4()): ns for ns in namespaces}
        self.closed_port = free_port()  # nothing listens there
        self.key = key
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        self.task: asyncio.Task[None] | None = None

    def hello(self, iid: str, namespace: str) -> bytes:
        adv = {"type": "service", "name": f"forged {namespace}", "namespace": namespace,
               "respondsTo": ["steal"], "key": self.key, "axon_type": "rep",
               "port": self.closed_port}  # fmt: skip
        data = {"isMaster": False, "isMasterEligible": False, "weight": 0,
                "address": "127.0.0.1", "advertisement": adv, "id": iid}  # fmt: skip
        return self.codec.encode(make_packet(HELLO, "forger", iid, "forger", data))

    async def _run(self) -> None:
        while True:
            for iid, namespace in self.nodes.items():
                self.sock.sendto(self.hello(iid, namespace), (HOST_SCOPE, self.port))
            await asyncio.sleep(HELLO_INTERVAL)

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> float:
        """Stop announcing; returns the loop time of the last hello."""
        assert self.task is not None
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task
        self.sock.close()
        return asyncio.get_running_loop().time()


def forged_namespaces(count: int) -> list[str]:
    return [f"forged-{i}" for i in range(count)]


def requester_ids(heard: list[Heard], namespaces: set[str]) -> set[str]:
    """Instance ids of the requesters that announced themselves in ``namespaces``."""
    return {
        h.iid for h in heard if h.event == HELLO and h.role == "req" and h.namespace in namespaces
    }


# -- the attack: fails on a Sockend without a namespace life cycle ------------------


async def test_forged_namespaces_stop_costing_hellos_after_the_forger_stops(
    disc: Disc, disc_port: int
) -> None:
    """Issue 10: forged namespaces left requesters broadcasting forever.

    Uses only what every Sockend has (defaults, no new option), so it runs
    against the one before the change too, where it fails.
    """
    async with ear(disc_port) as heard, Sockend(discovery=disc()) as sockend:
        names = forged_namespaces(8)
        forger = Forger(disc_port, sockend.advertisement["key"], names)
        forger.start()
        # The Sockend starts a requester in each forged namespace.
        await wait_for(
            lambda: len(requester_ids(heard.heard, set(names))) == len(names),
            SOON,
            what="a requester per forged namespace",
        )
        stopped = await forger.stop()
        bound = NODE_TIMEOUT + CHECK_INTERVAL + SLACK
        await asyncio.sleep(bound)
        window_start = asyncio.get_running_loop().time()
        await asyncio.sleep(3 * HELLO_INTERVAL)
        late = [
            h
            for h in heard.heard
            if h.at >= window_start and h.event == HELLO and h.namespace in set(names)
        ]
        assert not late, (
            f"{len(late)} hellos from {len({h.iid for h in late})} requesters of forged "
            f"namespaces {bound / MS:.0f} MS after the forger stopped"
        )
        # Each of those requesters said goodbye, within the bound.
        goodbyes = {h.iid: h.at for h in heard.heard if h.event == "goodbye"}
        for iid in requester_ids(heard.heard, set(names)):
            assert iid in goodbyes, f"requester {iid} never said goodbye"
            assert goodbyes[iid] - stopped <= bound


# -- the cap ----------------------------------------------------------------------


async def test_namespaces_past_the_cap_are_refused_with_one_line_each(
    disc: Disc, disc_port: int, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "coterie.sockend")
    names = forged_namespaces(10)
    cap = 4
    kept = adder(disc, namespace="kept")
    async with (
        ear(disc_port) as heard,
        kept,
        gateway(disc, max_namespaces=cap, namespaces=["kept"]) as (sockend, url),
    ):
        await sockend.wait_ready("kept", timeout=SOON)
        forger = Forger(disc_port, sockend.advertisement["key"], names)
        forger.start()
        most = 0
        loop = asyncio.get_running_loop()
        until = loop.time() + 5 * HELLO_INTERVAL
        while loop.time() < until or sockend.namespaces_refused < len(names) - cap:
            served = [ns for ns in sockend.namespaces() if ns in names]
            most = max(most, len(served))
            assert len(served) <= cap, served
            await asyncio.sleep(5 * MS)
        assert most == cap
        admitted = {ns for ns in sockend.namespaces() if ns in names}
        refused = set(names) - admitted
        # The pinned namespace does not count, and still works.
        assert "kept" in sockend.namespaces()
        async with client(url, namespaces=["/kept"]) as sio:
            assert await call(sio, "add", {"a": 1, "b": 2}, namespace="/kept") == (None, 3)
        # One line for each refused namespace, naming it and the announcing node.
        forged_ids = {ns: iid for iid, ns in forger.nodes.items()}
        lines = [r.getMessage() for r in caplog.records if "not serving namespace" in r.message]
        for ns in refused:
            matching = [line for line in lines if f"'{ns}'" in line]
            assert len(matching) == 1, (ns, lines)
            assert forged_ids[ns] in matching[0] and "max_namespaces=4" in matching[0]
        # Only the admitted namespaces ever ran a requester.
        assert {h.namespace for h in heard.heard if h.role == "req"} <= admitted | {"kept", None}

        stopped = await forger.stop()
        await wait_for(
            lambda: not any(ns in names for ns in sockend.namespaces()),
            NODE_TIMEOUT + CHECK_INTERVAL + SLACK,
            what="forged namespaces closed",
        )
        closed_after = asyncio.get_running_loop().time() - stopped
        assert closed_after <= NODE_TIMEOUT + CHECK_INTERVAL + SLACK
        assert sockend.namespaces_closed == cap
        assert sockend.namespaces() == ["kept"]


# -- a real namespace that goes idle ---------------------------------------------------


async def test_an_idle_namespace_is_closed_answers_gone_and_comes_back(disc: Disc) -> None:
    math, kept = adder(disc, namespace="math"), adder(disc, namespace="kept")
    async with gateway(disc, namespaces=["kept"]) as (sockend, url):
        async with math, kept:
            await sockend.wait_ready("math", timeout=SOON)
            await sockend.wait_ready("kept", timeout=SOON)
            async with client(url, namespaces=["/math", "/kept"]) as sio:
                assert await call(sio, "add", {"a": 1, "b": 1}, namespace="/math") == (None, 2)
        # Both responders said goodbye: "math" is closed after the node
        # timeout, "kept" (listed) never is.
        await wait_for(
            lambda: "math" not in sockend.namespaces(),
            NODE_TIMEOUT + CHECK_INTERVAL + SLACK,
            what="math closed",
        )
        assert sockend.namespaces_closed == 1
        await asyncio.sleep(NODE_TIMEOUT + CHECK_INTERVAL)
        assert "kept" in sockend.namespaces()
        async with client(url, namespaces=["/math", "/kept"]) as sio:
            ack = await call(sio, "add", {"a": 1, "b": 1}, namespace="/math")
            assert error_code(ack) == "gone"
            assert "'math'" in ack[0]["message"]
            assert error_code(await call(sio, "add", {}, namespace="/kept")) == "no_handler"
            # A responder of the namespace brings it back.
            async with adder(disc, namespace="math"):
                await sockend.wait_ready("math", timeout=SOON)
                assert await call(sio, "add", {"a": 2, "b": 3}, namespace="/math") == (None, 5)
