"""transport.peers: one outgoing link per node, kept up while the node lives, over real sockets."""

from __future__ import annotations

import asyncio
from typing import Any

from coterie.protocol.messages import encode_request
from coterie.protocol.nodes import Node
from coterie.transport.link import Link, serve
from coterie.transport.network import Listener
from coterie.transport.peers import Peer, Peers
from tests.helpers import MS, free_port, wait_for

SOON = 2_000 * MS


class Server:
    """A listener that records its links and the frames they carry."""

    def __init__(self) -> None:
        self.links: list[Link] = []
        self.frames: list[list[Any]] = []
        self.listener: Listener | None = None

    async def start(self, port: int = 0) -> int:
        self.listener = await serve(
            "127.0.0.1", port, lambda link, args: self.frames.append(args),
            lambda link, exc: None, on_open=self.links.append,
        )  # fmt: skip
        return self.listener.port

    def stop(self) -> None:
        assert self.listener is not None
        self.listener.close()
        for link in self.links:
            link.abort()


def node(port: int, node_id: str = "n1") -> Node:
    return Node(node_id, "p", "", "127.0.0.1", {"name": "svc", "port": port})


class Events:
    def __init__(self) -> None:
        self.up: list[str] = []
        self.down: list[str] = []
        self.forgotten: list[str] = []

    def peers(self) -> Peers:
        return Peers(
            on_up=lambda p: self.up.append(p.id),
            on_down=lambda p, exc: self.down.append(p.id),
            forget=self.forgotten.append,
            label="responder",
        )


async def test_a_node_is_linked_and_its_link_carries_frames() -> None:
    server, events = Server(), Events()
    port = await server.start()
    peers = events.peers()
    try:
        peers.add(node(port))
        await peers.wait_linked(1, SOON)
        assert events.up == ["n1"] and peers.connected == 1
        (peer,) = peers.linked()
        assert isinstance(peer, Peer) and peer.link is not None and peer.linked == 1
        peer.link.write(encode_request({"type": "x"}, "1"))
        await wait_for(lambda: server.frames, SOON)
        assert server.frames == [[{"type": "x"}, "1"]]
        await peers.close()
        # close() ends the link from this side: the server sees it go.
        await wait_for(lambda: server.links[0].closed, SOON)
        assert peers.peers == {}
    finally:
        await peers.close()
        server.stop()


async def test_a_dropped_link_is_reconnected_while_the_node_lives() -> None:
    server, events = Server(), Events()
    port = await server.start()
    peers = events.peers()
    try:
        peers.add(node(port))
        await peers.wait_linked(1, SOON)
        server.links[0].abort()
        await wait_for(lambda: len(events.up) == 2, SOON)
        assert events.down == ["n1"] and peers.peers["n1"].linked == 2
    finally:
        await peers.close()
        server.stop()


async def test_a_refused_port_means_the_node_is_gone() -> None:
    events = Events()
    peers = events.peers()
    try:
        peers.add(node(free_port()))  # nothing listens there
        await wait_for(lambda: events.forgotten, SOON)
        assert events.forgotten == ["n1"] and events.up == []
    finally:
        await peers.close()


async def test_a_removed_node_is_not_reconnected_but_keeps_its_live_link() -> None:
    server, events = Server(), Events()
    port = await server.start()
    peers = events.peers()
    try:
        peers.add(node(port))
        await peers.wait_linked(1, SOON)
        peers.remove("n1")
        assert peers.connected == 1  # a node that only missed hellos keeps delivering
        server.links[0].abort()
        await wait_for(lambda: events.down, SOON)
        await asyncio.sleep(100 * MS)  # a reconnect would take 50 ms at most
        assert events.up == ["n1"] and peers.peers == {}
    finally:
        await peers.close()
        server.stop()


async def test_a_node_without_a_port_is_not_dialled() -> None:
    events = Events()
    peers = events.peers()
    peers.add(Node("n2", "p", "", "127.0.0.1", {"name": "no port"}))
    assert peers.peers == {}
    await peers.close()
