"""Outgoing links to discovered nodes, kept up while the nodes live.

Design: components that *connect* (a Subscriber to its Publishers, any
monitorable component to its Monitors) need the same thing: one TCP link per
discovered node, opened when the node appears, re-opened with backoff when it
drops while the node is still alive, closed when the node leaves. A
:class:`Peers` owns that bookkeeping and reports links going up and down
through callbacks; it never decides what flows on them.

How long to wait between attempts, and that a refused connection means
the node is gone (reported at once through ``forget`` rather than retried
until the discovery timeout), is one pure rule:
:class:`coterie.protocol.backoff.Reconnect`, the same back-off outlier
ejection uses.

A link that worked and that the peer closed cleanly (an end of stream, not
a reset) is not reopened: the peer is closing, as cote's components close
without a goodbye, and its port may soon serve another component; the node
is dropped and returns with its next hello if it lives on
(:meth:`Reconnect.lost <coterie.protocol.backoff.Reconnect.lost>`).

When discovery drops a node, reconnecting stops but a live link is kept
until it drops by itself: a node that merely missed hellos keeps its link
(no events lost to a discovery hiccup), while a node that is really gone
closes or resets it (TCP keepalive catches silent deaths). Graceful closes
end the links from the other side at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from coterie.errors import AuthError
from coterie.protocol.backoff import CONNECT_TIMEOUT, ConnectFailure, Reconnect, dropped_at_once
from coterie.protocol.framing import DEFAULT_MAX_FRAME_SIZE
from coterie.protocol.nodes import Node
from coterie.tls import TLS, describe_failure
from coterie.transport.link import FrameHandler, Link, connect
from coterie.transport.network import TCP, LinkNetwork
from coterie.transport.retry import jitter

__all__ = ["Peer", "Peers"]

log = logging.getLogger("coterie.peers")


class Peer:
    """One discovered node and, while connected, its link.

    Attributes:
        node: The node as last announced.
        link: The live link, or ``None`` while (re)connecting.
        removed: The node left; no more reconnects.
        linked: How many times a link to it came up (more than 1: reconnects).
        address: Where its last link went (``host:port``), ``""`` before any.
    """

    __slots__ = (
        "address",
        "connector",
        "link",
        "linked",
        "node",
        "reconnect",
        "removed",
        "warned",
    )

    def __init__(self, node: Node) -> None:
        self.node = node
        self.link: Link | None = None
        self.connector: asyncio.Task[None] | None = None
        self.removed = False
        self.linked = 0
        self.address = ""
        #: The reconnect rule, kept across links so a peer that drops every
        #: link at once is retried with back-off.
        self.reconnect = Reconnect()
        #: A TLS failure with this peer was said at WARNING (the rest go to DEBUG).
        self.warned = False

    @property
    def id(self) -> str:
        """The node's instance id."""
        return self.node.id


def _ignore_frame(link: Link, args: list[object]) -> None:
    """Default frame handler: connecting roles that only send ignore input."""


class Peers:
    """Keeps one outgoing link per added node, reconnecting while it lives.

    Args:
        on_frame: Called with ``(link, args)`` per received frame;
            ``link.context`` is the :class:`Peer`.
        on_up: Called with the :class:`Peer` once its link is connected.
        on_down: Called with ``(peer, exc)`` when a connected link drops.
        forget: Called with a node id whose port refuses connections (the
            process is gone), typically ``Discovery.forget``.
        max_frame_size: Largest frame accepted on these links.
        label: What the peers are, for log lines (``"publisher"``, ...).
        tls: The connecting side's mutual TLS (:mod:`coterie.tls`); each
            peer's certificate must carry the name it announces.
        network: Where links are opened (:mod:`coterie.transport.network`).
    """

    def __init__(
        self,
        *,
        on_frame: FrameHandler = _ignore_frame,
        on_up: Callable[[Peer], None] | None = None,
        on_down: Callable[[Peer, Exception | None], None] | None = None,
        forget: Callable[[str], None] | None = None,
        max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
        label: str = "peer",
        tls: TLS | None = None,
        network: LinkNetwork = TCP,
    ) -> None:
        self.tls = tls
        self.network = network
        self._on_frame = on_frame
        self._on_up = on_up
        self._on_down = on_down
        self.forget = forget
        self.max_frame_size = max_frame_size
        self.label = label
        #: Connect by announced host name instead of source address.
        self.use_host_names = False
        self.peers: dict[str, Peer] = {}
        self._closed = False
        self._change = asyncio.Event()

    # -- queries -----------------------------------------------------------

    def linked(self) -> list[Peer]:
        """Peers whose link is up."""
        return [p for p in self.peers.values() if p.link is not None]

    @property
    def connected(self) -> int:
        """How many peers have a live link."""
        return sum(1 for p in self.peers.values() if p.link is not None)

    async def wait_linked(self, count: int = 1, timeout: float = 10.0) -> None:
        """Wait until at least ``count`` peers are linked.

        Raises:
            TimeoutError: When they are not within ``timeout`` seconds.
        """
        async with asyncio.timeout(timeout):
            while self.connected < count:
                self._change.clear()
                await self._change.wait()

    # -- discovery events --------------------------------------------------

    def add(self, node: Node) -> None:
        """A node to link to appeared (or came back)."""
        if self._closed or node.port is None:
            return
        peer = self.peers.get(node.id)
        if peer is None:
            peer = self.peers[node.id] = Peer(node)
        peer.node = node
        peer.removed = False
        self._ensure_connecting(peer)

    def update(self, node: Node) -> None:
        """A node changed its advertisement (a new port is used on reconnect)."""
        peer = self.peers.get(node.id)
        if peer is None:
            self.add(node)
        else:
            peer.node = node

    def remove(self, node_id: str) -> None:
        """A node left discovery: stop reconnecting.

        A live link is kept until it drops (see the module doc): a node that
        only missed hellos keeps delivering, and one that is really gone
        closes or resets its link. If the node comes back meanwhile, the
        same link serves it again, never a second one.
        """
        peer = self.peers.get(node_id)
        if peer is None:
            return
        peer.removed = True
        if peer.connector is not None:
            peer.connector.cancel()
        if peer.link is None:
            del self.peers[node_id]

    async def close(self) -> None:
        """Close every link and stop all reconnects."""
        self._closed = True
        peers = list(self.peers.values())
        self.peers.clear()
        tasks = []
        for peer in peers:
            peer.removed = True
            if peer.connector is not None:
                peer.connector.cancel()
                tasks.append(peer.connector)
            if peer.link is not None:
                peer.link.close()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    # -- internals ---------------------------------------------------------

    def _ensure_connecting(self, peer: Peer, delay: float = 0.0) -> None:
        if peer.link is not None or (peer.connector is not None and not peer.connector.done()):
            return
        peer.connector = asyncio.get_running_loop().create_task(
            self._connect(peer, delay), name=f"coterie-{self.label}-{peer.id[:8]}"
        )

    def _tls_trouble(self, peer: Peer, message: str, *args: object) -> None:
        """Say a TLS failure with ``peer`` once at WARNING, then at DEBUG."""
        level = logging.DEBUG if peer.warned else logging.WARNING
        peer.warned = True
        log.log(level, message, *args)

    async def _connect(self, peer: Peer, first_wait: float = 0.0) -> None:
        rule = peer.reconnect
        if first_wait:
            await asyncio.sleep(first_wait)
        while not peer.removed and not self._closed:
            node = peer.node
            host, port = node.connect_host(self.use_host_names), node.port
            if port is None:
                return
            try:
                link = await connect(
                    host,
                    port,
                    self._on_frame,
                    self._on_link_closed,
                    max_frame_size=self.max_frame_size,
                    timeout=CONNECT_TIMEOUT,
                    tls=self.tls,
                    server_name=str(node.advertisement.get("name", "")),
                    network=self.network,
                )
            except (AuthError, OSError, TimeoutError) as exc:
                why: ConnectFailure
                if isinstance(exc, AuthError):
                    why = "auth"
                    self._tls_trouble(
                        peer,
                        "TLS with %s %r at %s:%s failed: %s",
                        self.label,
                        node.advertisement.get("name"),
                        host,
                        port,
                        describe_failure(exc),
                    )
                else:
                    why = "refused" if isinstance(exc, ConnectionRefusedError) else "other"
                    log.debug(
                        "connect to %s %s at %s:%s failed: %s",
                        self.label,
                        node.id,
                        host,
                        port,
                        exc,
                    )
                delay = rule.failed(why, jitter())
                if delay is None:  # nothing listens there: the process is gone
                    if self.forget is not None:
                        self.forget(node.id)
                    return
                await asyncio.sleep(delay)
                continue
            if peer.removed or self._closed:
                link.close()
                return
            peer.link = link
            peer.linked += 1
            peer.address = link.peer
            link.context = peer
            log.debug("linked to %s %s at %s:%s", self.label, node.id, host, port)
            self._change.set()
            if self._on_up is not None:
                try:
                    self._on_up(peer)
                except Exception:
                    log.exception("error in link-up handler for %s %s", self.label, peer.id)
            return

    def _on_link_closed(self, link: Link, exc: Exception | None) -> None:
        peer: Peer | None = link.context
        if peer is None or peer.link is not link:
            return
        peer.link = None
        self._change.set()
        if self._on_down is not None:
            try:
                self._on_down(peer, exc)
            except Exception:
                log.exception("error in link-down handler for %s %s", self.label, peer.id)
        if peer.removed or self._closed:
            if self.peers.get(peer.id) is peer:
                del self.peers[peer.id]
            return
        lived = asyncio.get_running_loop().time() - link.opened_at
        delay = peer.reconnect.lost(link.frames, lived, jitter(), by_peer=link.ended_by_peer)
        if delay is None:  # it closed a link that worked: it is closing (cote says no goodbye)
            log.info(
                "%s %r closed its link; not reconnecting (it returns with its next hello)",
                self.label,
                peer.node.advertisement.get("name"),
            )
            del self.peers[peer.id]
            if self.forget is not None:
                self.forget(peer.id)
            return
        if self.tls is not None and dropped_at_once(link.frames, lived):
            self._tls_trouble(
                peer,
                "%s %r at %s closed the TLS link right after the handshake, before any "
                "answer: it most likely refused this side's certificate; this side's "
                "COTERIE_TLS_CERT must be issued by the CA the peer trusts (or both use the "
                "same COTERIE_LINK_SECRET); the peer's log says why",
                self.label,
                peer.node.advertisement.get("name"),
                link.peer,
            )
        else:
            log.info(
                "link to %s %s lost (%s); reconnecting",
                self.label,
                peer.node.advertisement.get("name"),
                exc or "closed by peer",
            )
        self._ensure_connecting(peer, delay)
