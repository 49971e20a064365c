"""The discovery service: hellos out, node events in (asyncio adapter).

Design: :class:`Discovery` glues three socket-free parts, the packet codec,
the node table and the settings, to a transport and two timers. It is thin on
purpose: every rule lives in the sans-I/O modules and is unit tested there.

Beyond cote, and harmless to Node peers:

- *fast contact*: a node that sees a new instance answers its hello at once,
  so a newcomer learns the mesh in milliseconds instead of waiting for the
  next hello interval; the replies of one loop turn are coalesced into one
  and budgeted (:class:`~coterie.protocol.nodes.ReplyBudget`, 10 a second),
  so a flood of forged newcomers cannot use the mesh as an amplifier;
- *goodbye*: a closing node says so, and peers drop it at once. Node cote
  ignores the unknown event and drops the node after its timeout as usual.

The hello's ``address`` (always "127.0.0.1" in node-discover) is the address
peers should connect to: ``advertise_address`` when set, else the local
address the hello leaves from (one per interface it is broadcast on, see
:func:`~coterie.discovery.transports.plan_outlets`; the route to Redis with
Redis). node-discover ignores the field and uses the datagram's source, so
Node peers are unaffected.

With ``seeds``, the service resolves them every ``seed_interval`` and sends
unicast hellos to what they resolve to; only those addresses (and the static
``unicast`` list) are members of the mesh.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import sys
import time
import uuid
from collections.abc import Callable
from typing import Any

from coterie.discovery.medium import (
    Announcing,
    DiscoveryTransport,
    Registry,
    Scoped,
    Unicasting,
)
from coterie.discovery.options import DiscoverySettings
from coterie.discovery.seeds import SeedSet, refresh
from coterie.discovery.transports import make_transport
from coterie.errors import DecodeError
from coterie.protocol.nodes import Node, NodeTable, ReplyBudget
from coterie.protocol.packets import GOODBYE, HELLO, PacketCodec, host_name, make_packet
from coterie.transport.timer import Alarm

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
            max_nodes=settings.max_nodes,
        )
        self._transport = (transport_factory or make_transport)(settings)
        if isinstance(self._transport, Registry):
            # A registry (etcd) reports departures itself, from its leases,
            # and re-sends no hello: its nodes are never timed out for silence.
            self.table.node_timeout = self.table.master_timeout = math.inf
            self._transport.attach(self)
        if isinstance(self._transport, Scoped):
            self._transport.scope(self.advertisement)
        self._listeners: list[NodeListener] = []
        self._hello_alarm = Alarm(self._hello_tick)
        self._check_alarm = Alarm(self._check_tick)
        self._running = False
        self._hellos_sent = 0
        self._announced: tuple[str, ...] = ()
        self._seeds = SeedSet(settings.seeds, settings.unicast) if settings.seeds else None
        self._seed_task: asyncio.Task[None] | None = None
        self._reply_budget = ReplyBudget()
        self._reply_pending = False
        self._full_reported = False
        #: Set by the component: whether it holds a live link to a node. A
        #: goodbye for such a node is left to the link (see :meth:`_receive`).
        self.linked: Callable[[str], bool] | None = None

    # -- public -----------------------------------------------------------

    @property
    def nodes(self) -> dict[str, Node]:
        """Live peers by instance id."""
        return self.table.nodes

    @property
    def hellos_sent(self) -> int:
        """How many hellos this node has sent."""
        return self._hellos_sent

    @property
    def advertised(self) -> tuple[str, ...]:
        """The addresses the last hello announced (one per outlet)."""
        return self._announced

    @property
    def members(self) -> frozenset[str] | None:
        """With seeds: the addresses whose hellos count; ``None`` without seeds."""
        return self._seeds.members if self._seeds is not None else None

    def on(self, listener: NodeListener) -> None:
        """Call ``listener(event, node)`` for every node added or removed."""
        self._listeners.append(listener)

    def me(self, address: str | None = None) -> dict[str, Any]:
        """The ``data`` object of this node's hello.

        Args:
            address: The local address this hello leaves from; the
                ``advertise_address`` setting wins over it.
        """
        announced = self.settings.advertise_address or address
        if announced is None:
            announced = self._announced[0] if self._announced else "127.0.0.1"
        return {
            "isMaster": self.table.is_master,
            "isMasterEligible": self.table.is_master_eligible,
            "weight": self.table.weight,
            "address": announced,
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
        if self._seeds is not None:
            await self._refresh_seeds(first=True)
            self._seed_task = asyncio.create_task(self._seed_loop(), name="coterie-seeds")
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
        if self.settings.log and self.settings.hello_logs and self._announced:
            log.info("%s advertises %s", adv.get("name"), ", ".join(self._announced))
        self._hello_alarm.after(self.settings.hello_interval / 1000)
        self._check_alarm.after(self.settings.check_interval / 1000)

    def hello(self) -> None:
        """Send a hello now, naming in each copy the address it leaves from."""
        if not self._running:
            return
        transport = self._transport
        if not isinstance(transport, Announcing) or self.settings.advertise_address:
            datagram = self._encode_hello(None)
            if datagram is not None:
                transport.send(datagram)
        else:
            announced: list[str] = []

            def encode(address: str) -> bytes | None:
                announced.append(address)
                return self._encode_hello(address)

            transport.send_each(encode)
            if announced:
                self._announced = tuple(dict.fromkeys(announced))
        self._hellos_sent += 1

    def _encode_hello(self, address: str | None) -> bytes | None:
        data = self.me(address)
        if address is None:
            self._announced = (data["address"],)
        host = host_name(
            self.settings.hostname, self.settings.hostname_from_address, data["address"]
        )
        return self._encode(make_packet(HELLO, PROCESS_ID, self.iid, host, data))

    async def close(self) -> None:
        """Say goodbye (unless disabled), stop the timers and the transport."""
        if not self._running:
            return
        if self.settings.goodbye:
            announced = self._announced[0] if self._announced else None
            host = host_name(self.settings.hostname, self.settings.hostname_from_address, announced)
            datagram = self._encode(
                make_packet(GOODBYE, PROCESS_ID, self.iid, host, {"id": self.iid})
            )
            if datagram is not None:
                self._transport.send(datagram)
        self._running = False
        self._hello_alarm.cancel()
        self._check_alarm.cancel()
        if self._seed_task is not None:
            self._seed_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._seed_task
            self._seed_task = None
        await self._transport.close()

    def forget(self, iid: str) -> None:
        """Drop a node now (a link proved it dead); it returns with its next hello."""
        node = self.table.remove(iid)
        if node is not None:
            self._emit("removed", node)

    # -- internals --------------------------------------------------------

    def _hello_tick(self) -> None:
        if self._running:
            self.hello()
            self._hello_alarm.after(self.settings.hello_interval / 1000)

    def _check_tick(self) -> None:
        if not self._running:
            return
        removed, promoted = self.table.sweep(time.monotonic())
        for node in removed:
            self._emit("removed", node)
        if promoted:
            self.hello()  # announce the promotion, as node-discover does
        self._check_alarm.after(self.settings.check_interval / 1000)

    def _encode(self, packet: dict[str, Any]) -> bytes | None:
        try:
            return self._codec.encode(packet)
        except ValueError as exc:
            log.error("%s", exc)
            return None

    # -- seeds ------------------------------------------------------------

    async def _seed_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.seed_interval / 1000)
            try:
                await self._refresh_seeds()
            except Exception:  # pragma: no cover - a bug, not a lookup failure
                log.exception("seed refresh failed")

    async def _refresh_seeds(self, *, first: bool = False) -> None:
        seeds = self._seeds
        assert seeds is not None
        # A lookup never holds the timers up for long: at most one interval,
        # and 2 s at start.
        bound = self.settings.seed_interval / 1000
        added, removed = await refresh(
            seeds, self.settings.port, min(bound, 2.0) if first else bound
        )
        if not self._running:
            return
        transport = self._transport
        if not isinstance(transport, Unicasting):
            if first:
                log.warning("the discovery transport takes no unicast list; seeds are ignored")
            return
        transport.set_unicast(seeds.addresses)
        if added or removed:
            log.info(
                "seeds: %s (+%s -%s)",
                ", ".join(seeds.addresses) or "none",
                ",".join(sorted(added)) or "0",
                ",".join(sorted(removed)) or "0",
            )
        for node in self.table.retain(lambda n: seeds.admits(n.address, n.data.get("address"))):
            self._emit("removed", node)
        if added and not first:
            self.hello()  # newcomers hear from us now, not at the next interval

    def _receive(self, datagram: bytes, address: str) -> None:
        try:
            packet = self._codec.decode(datagram)
        except DecodeError as exc:
            log.debug("dropped discovery datagram from %s: %s", address, exc)
            return
        event = packet["event"]
        if event == HELLO:
            seeds = self._seeds
            if seeds is not None and not seeds.admits(address, packet["data"].get("address")):
                log.debug("ignored a hello from %s: not among the seeds", address)
                return
            seen = self.table.hello(packet, address, time.monotonic())
            if seen is None:
                if self.table.ignored["full"] == 1 and not self._full_reported:
                    self._full_reported = True
                    log.warning(
                        "discovery tracks %d nodes, its limit: hellos of new nodes are "
                        "ignored; raise DiscoveryOptions(max_nodes=...) if the mesh is "
                        "this large",
                        len(self.table.nodes),
                    )
                return
            node, is_new, changed = seen
            if is_new:
                self._emit("added", node)
                if self.settings.fast_contact and self.table.greets(node.id):
                    self._fast_contact()
            elif changed:
                self._emit("updated", node)
        elif event == GOODBYE:
            linked = self.linked is not None and self.linked(packet["iid"])
            gone = self.table.goodbye(packet, address, linked=linked)
            if gone is not None:
                self._emit("removed", gone)

    def _fast_contact(self) -> None:
        """Answer newcomers: one hello per loop turn at most, within a budget."""
        if self._reply_pending or not self._running:
            return
        if not self._reply_budget.take(time.monotonic()):
            return  # they hear the next regular hello
        self._reply_pending = True
        asyncio.get_running_loop().call_soon(self._fast_hello)

    def _fast_hello(self) -> None:
        self._reply_pending = False
        self.hello()

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
