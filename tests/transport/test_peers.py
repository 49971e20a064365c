"""transport.peers: one outgoing link per node, kept up while the node lives, over real sockets."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from coterie.protocol.messages import encode_request
from coterie.protocol.nodes import Node
from coterie.transport.link import Link, serve
from coterie.transport.network import Listener
from coterie.transport.peers import Peer, Peers
from tests.helpers import MS, free_port, wait_for

SOON = 2_000 * MS


class Bed:
    """A listener that records its links and frames, and a Peers that records its events."""

    def __init__(self) -> None:
        self.links: list[Link] = []
        self.frames: list[list[Any]] = []
        self.listener: Listener | None = None
        self.up: list[str] = []
        self.down: list[str] = []
        self.forgotten: list[str] = []
        self.peers = Peers(
            on_up=lambda p: self.up.append(p.id),
            on_down=lambda p, exc: self.down.append(p.id),
            forget=self.forgotten.append,
            label="responder",
        )

    async def listen(self) -> Node:
        """Start the listener; the node that announces it."""
        self.listener = await serve(
            "127.0.0.1", 0, lambda link, args: self.frames.append(args),
            lambda link, exc: None, on_open=self.links.append,
        )  # fmt: skip
        return node(self.listener.port)

    async def close(self) -> None:
        await self.peers.close()
        if self.listener is not None:
            self.listener.close()
        for link in self.links:
            link.abort()


def node(port: int, node_id: str = "n1") -> Node:
    return Node(node_id, "p", "", "127.0.0.1", {"name": "svc", "port": port})


@pytest.fixture
async def bed() -> AsyncIterator[Bed]:
    bed = Bed()
    yield bed
    await bed.close()


async def test_a_node_is_linked_and_its_link_carries_frames(bed: Bed) -> None:
    bed.peers.add(await bed.listen())
    await bed.peers.wait_linked(1, SOON)
    assert bed.up == ["n1"] and bed.peers.connected == 1
    (peer,) = bed.peers.linked()
    assert isinstance(peer, Peer) and peer.link is not None and peer.linked == 1
    peer.link.write(encode_request({"type": "x"}, "1"))
    await wait_for(lambda: bed.frames, SOON)
    assert bed.frames == [[{"type": "x"}, "1"]]
    await bed.peers.close()
    # close() ends the link from this side: the server sees it go.
    await wait_for(lambda: bed.links[0].closed, SOON)
    assert bed.peers.peers == {}


async def test_a_dropped_link_is_reconnected_while_the_node_lives(bed: Bed) -> None:
    bed.peers.add(await bed.listen())
    await bed.peers.wait_linked(1, SOON)
    bed.links[0].abort()
    await wait_for(lambda: len(bed.up) == 2, SOON)
    assert bed.down == ["n1"] and bed.peers.peers["n1"].linked == 2


async def test_a_refused_port_means_the_node_is_gone(bed: Bed) -> None:
    bed.peers.add(node(free_port()))  # nothing listens there
    await wait_for(lambda: bed.forgotten, SOON)
    assert bed.forgotten == ["n1"] and bed.up == []


async def test_a_removed_node_is_not_reconnected_but_keeps_its_live_link(bed: Bed) -> None:
    bed.peers.add(await bed.listen())
    await bed.peers.wait_linked(1, SOON)
    bed.peers.remove("n1")
    assert bed.peers.connected == 1  # a node that only missed hellos keeps delivering
    bed.links[0].abort()
    await wait_for(lambda: bed.down, SOON)
    await asyncio.sleep(100 * MS)  # a reconnect would take 50 ms at most
    assert bed.up == ["n1"] and bed.peers.peers == {}


async def test_a_node_without_a_port_is_not_dialled(bed: Bed) -> None:
    bed.peers.add(Node("n2", "p", "", "127.0.0.1", {"name": "no port"}))
    assert bed.peers.peers == {}
