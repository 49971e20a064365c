"""The discovery service: hellos out, node events in (asyncio adapter).

Design: :class:`Discovery` glues three socket-free parts, the packet codec,
the node table and the settings, to a transport and two timers. It is thin on
purpose: every rule lives in the sans-I/O modules and is unit tested there.

Beyond cote, and harmless to Node peers:

- *fast contact*: a node that sees a new instance answers its hello at once,
  so a newcomer learns the mesh in milliseconds instead of waiting for the
  next hello interval;
- *goodbye*: a closing node says so, and peers drop it at once. Node cote
  ignores the unknown event and drops the node after its timeout as usual.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
import uuid
from collections.abc import Callable
from typing import Any

from coterie.discovery.options import DiscoverySettings
from coterie.discovery.transports import DiscoveryTransport, make_transport
from coterie.errors import DecodeError
from coterie.protocol.nodes import Node, NodeTable
from coterie.protocol.packets import GOODBYE, HELLO, PacketCodec, make_packet

__all__ = ["PROCESS_ID", "Discovery", "NodeListener", "TransportFactory"]

log = logging.getLogger("coterie.discovery")

#: This process's id in every packet (``pid``), one uuid4 per process as in cote.
PROCESS_ID = str(uuid.uuid4())

#: Called with ``"added"``, ``"updated"`` (its advertisement changed) or
#: ``"removed"``, and the node.
NodeListener = Callable[[str, Node], None]
TransportFactory = Callable[[DiscoverySettings], DiscoveryTransport]


def _process_command() -> str:
    return " ".join("/".join(arg.split("/")[-2:]) for arg in sys.argv)


def _weight() -> float:
    # node-discover: -(Date.now() / 10 ** digits); older processes weigh more.
    now_ms = int(time.time() * 1000)
    return -(now_ms / float(10 ** len(str(now_ms))))


class Discovery:
    """Announces one component and tracks its peers.

    Args:
        advertisement: The component's advertisement; it is sent by reference,
            so later changes (a bound port, new handler types) go out with the
            next hello.
        settings: Resolved discovery settings.
        transport_factory: Builds the transport; default UDP or Redis by
            settings.
    """

    def __init__(
        self,
        advertisement: dict[str, Any],
        settings: DiscoverySettings,
        *,
        transport_factory: TransportFactory | None = None,
    ) -> None:
        self.settings = settings
        self.iid = str(uuid.uuid4())
        self.advertisement = advertisement
        self._codec = PacketCodec(settings.key, settings.max_datagram_size)
        self.table = NodeTable(
            self.iid,
            PROCESS_ID,
            node_timeout=settings.node_timeout / 1000,
            master_timeout=settings.master_timeout / 1000,
            ignore_process=settings.ignore_process,
            weight=_weight(),
        )
        self._transport = (transport_factory or make_transport)(settings)
        self._listeners: list[NodeListener] = []
        self._timers: list[asyncio.TimerHandle] = []
        self._running = False
        self._hellos_sent = 0

    # -- public -----------------------------------------------------------

    @property
    def nodes(self) -> dict[str, Node]:
        """Live peers by instance id."""
        return self.table.nodes

    @property
    def hellos_sent(self) -> int:
        """How many hellos this node has sent."""
        return self._hellos_sent

    def on(self, listener: NodeListener) -> None:
        """Call ``listener(event, node)`` for every node added or removed."""
        self._listeners.append(listener)

    def me(self) -> dict[str, Any]:
        """The ``data`` object of this node's hello."""
        return {
            "isMaster": self.table.is_master,
            "isMasterEligible": self.table.is_master_eligible,
            "weight": self.table.weight,
            "address": "127.0.0.1",
            "advertisement": self.advertisement,
            "id": self.iid,
            "processId": PROCESS_ID,
            "processCommand": _process_command(),
        }

    async def start(self) -> None:
        """Open the transport, say hello and start the timers."""
        if self._running:
            return
        await self._transport.start(self._receive)
        self._running = True
        adv = self.advertisement
        if self.settings.log and self.settings.hello_logs:
            log.info(
                "hello: %s %s#%s%s via %s",
                adv.get("axon_type", adv.get("type")),
                adv.get("name"),
                self.iid,
                f" on port {adv['port']}" if adv.get("port") else "",
                self.settings.scope,
            )
        self.hello()
        self._schedule(self.settings.hello_interval, self._hello_tick)
        self._schedule(self.settings.check_interval, self._check_tick)

    def hello(self) -> None:
        """Send a hello now."""
        if self._running:
            self._send(HELLO, self.me())

    async def close(self) -> None:
        """Say goodbye (unless disabled), stop the timers and the transport."""
        if not self._running:
            return
        if self.settings.goodbye:
            self._send(GOODBYE, {"id": self.iid})
        self._running = False
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()
        await self._transport.close()

    def forget(self, iid: str) -> None:
        """Drop a node now (a link proved it dead); it returns with its next hello."""
        node = self.table.remove(iid)
        if node is not None:
            self._emit("removed", node)

    # -- internals --------------------------------------------------------

    def _schedule(self, interval_ms: int, callback: Callable[[], None]) -> None:
        loop = asyncio.get_running_loop()
        self._timers = [t for t in self._timers if not t.cancelled()]
        self._timers.append(loop.call_later(interval_ms / 1000, callback))

    def _hello_tick(self) -> None:
        if self._running:
            self.hello()
            self._schedule(self.settings.hello_interval, self._hello_tick)

    def _check_tick(self) -> None:
        if not self._running:
            return
        was_master = self.table.is_master
        for node in self.table.check(time.monotonic()):
            self._emit("removed", node)
        if self.table.is_master and not was_master:
            self.hello()  # announce the promotion, as node-discover does
        self._schedule(self.settings.check_interval, self._check_tick)

    def _send(self, event: str, data: dict[str, Any]) -> None:
        packet = make_packet(event, PROCESS_ID, self.iid, self.settings.hostname, data)
        try:
            datagram = self._codec.encode(packet)
        except ValueError as exc:
            log.error("%s", exc)
            return
        self._transport.send(datagram)
        if event == HELLO:
            self._hellos_sent += 1

    def _receive(self, datagram: bytes, address: str) -> None:
        try:
            packet = self._codec.decode(datagram)
        except DecodeError as exc:
            log.debug("dropped discovery datagram from %s: %s", address, exc)
            return
        event = packet["event"]
        if event == HELLO:
            seen = self.table.hello(packet, address, time.monotonic())
            if seen is None:
                return
            node, is_new, changed = seen
            if is_new:
                self._emit("added", node)
                if self.settings.fast_contact:
                    self.hello()
            elif changed:
                self._emit("updated", node)
        elif event == GOODBYE:
            gone = self.table.goodbye(packet)
            if gone is not None:
                self._emit("removed", gone)

    def _emit(self, event: str, node: Node) -> None:
        s = self.settings
        if (
            event != "updated"
            and s.log
            and s.status_logs
            and node.advertisement.get("key") == self.advertisement.get("key")
        ):
            log.info(
                "%s > %s.%s %s#%s",
                self.advertisement.get("name"),
                node.advertisement.get("type"),
                "online" if event == "added" else "offline",
                node.advertisement.get("name"),
                node.id,
            )
        for listener in list(self._listeners):
            try:
                listener(event, node)
            except Exception:
                log.exception("discovery listener failed on %s of %s", event, node.id)
