"""The discovery service: hellos out, node events in (asyncio adapter).

Design: :class:`Discovery` glues three socket-free parts, the packet codec,
the node table and the settings, to a transport and two timers. It is thin on
purpose: every rule lives in the sans-I/O modules and is unit tested there.

Discovery is paid per process, not per component: components of one event
loop with equal settings (and transport factory) share one ``_Hub``, that is
one transport (one socket), one decode per datagram, one node table, one
hello timer and one check timer, reference counted and closed with the last
component. Each component still sends its own hello, byte for byte what
cote sends, and sees every node but itself. A registry medium (etcd)
registers each component on its own, so its hubs are never shared.

Beyond cote, and harmless to Node peers:

- *fast contact*: a node that sees a new instance answers its hello at once,
  so a newcomer learns the mesh in milliseconds instead of waiting for the
  next hello interval; the replies of one loop turn are coalesced into one
  and budgeted per process (:class:`~coterie.protocol.nodes.ReplyBudget`,
  10 a second), so a flood of forged newcomers cannot use the mesh as an
  amplifier; a node that returns after being dropped is not a newcomer and
  sets off no replies (:meth:`~coterie.protocol.nodes.NodeTable.greets`);
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
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from coterie.discovery.lookups import SeedSet, refresh
from coterie.discovery.medium import (
    Announcing,
    DiscoveryTransport,
    Registration,
    Registry,
    Scoped,
    Unicasting,
)
from coterie.discovery.network import DEFAULT_NETWORK
from coterie.discovery.options import DiscoverySettings
from coterie.discovery.shared import PerLoop
from coterie.errors import DecodeError
from coterie.protocol.groups import Entry
from coterie.protocol.nodes import Node, NodeTable, ReplyBudget
from coterie.protocol.packets import GOODBYE, HELLO, PacketCodec, make_packet
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


class _Peers(Mapping[str, Node]):
    """The nodes of a shared table as one component sees them: all but itself."""

    __slots__ = ("_iid", "_nodes")

    def __init__(self, nodes: dict[str, Node], iid: str) -> None:
        self._nodes = nodes
        self._iid = iid

    def __getitem__(self, iid: str) -> Node:
        if iid == self._iid:
            raise KeyError(iid)
        return self._nodes[iid]

    def __contains__(self, iid: object) -> bool:
        return iid != self._iid and iid in self._nodes

    def __iter__(self) -> Iterator[str]:
        own = self._iid
        return (iid for iid in self._nodes if iid != own)

    def __len__(self) -> int:
        return len(self._nodes) - (self._iid in self._nodes)


#: The fast-contact budget of each event loop: a process answers newcomers
#: within one budget however many components it runs.
_BUDGETS: PerLoop[ReplyBudget] = PerLoop("fast-contact budget")
#: Departed members remembered, so their last hellos still in flight are ignored.
_DEPARTED_MEMORY = 1024


class _Hub:
    """Discovery for every component of a process that shares its settings.

    One transport (one socket), one decode per datagram, one node table, one
    hello timer and one check timer, however many components join; the last
    to leave closes it. Each member still sends its own hello.

    Args:
        key: Its key in :data:`_HUBS` (``None``: private to one member).
        settings: The shared settings.
        transport: The medium, not started yet.
    """

    def __init__(
        self,
        key: tuple[Any, ...] | None,
        settings: DiscoverySettings,
        transport: DiscoveryTransport,
    ) -> None:
        self.key = key
        self.settings = settings
        self.transport = transport
        self.codec = PacketCodec(settings.key, settings.max_datagram_size)
        self.table = NodeTable(
            None,
            PROCESS_ID,
            node_timeout=settings.node_timeout / 1000,
            master_timeout=settings.master_timeout / 1000,
            ignore_process=settings.ignore_process,
            weight=_weight(),
            max_nodes=settings.max_nodes,
        )
        if isinstance(transport, Registry):
            # A registry (etcd) reports departures itself, from its leases,
            # and re-sends no hello: its nodes are never timed out for silence.
            self.table.node_timeout = self.table.master_timeout = math.inf
        self.members: dict[str, Discovery] = {}
        self.seeds = SeedSet(settings.seeds, settings.unicast) if settings.seeds else None
        self._loop = asyncio.get_running_loop()
        self._hello_alarm = Alarm(self._hello_tick)
        self._check_alarm = Alarm(self._check_tick)
        self._seed_task: asyncio.Task[None] | None = None
        self._reply_pending = False
        self._full_reported = False
        self._departed: dict[str, None] = {}
        # The last hello of each node, both ways: repeats are only timed.
        self._repeats: dict[bytes, str] = {}
        self._last_hello: dict[str, bytes] = {}
        self._running = False

    # -- life cycle -------------------------------------------------------------

    async def start(self) -> None:
        """Open the transport, resolve the seeds once, start the timers."""
        await self.transport.start(self._receive)
        self._running = True
        if self.seeds is not None:
            await self._refresh_seeds(first=True)
            self._seed_task = asyncio.create_task(self._seed_loop(), name="coterie-seeds")
        self._hello_alarm.after(self.settings.hello_interval / 1000)
        self._check_alarm.after(self.settings.check_interval / 1000)

    def join(self, member: Discovery) -> None:
        """Take a member in and tell it every node already known."""
        self.members[member.iid] = member
        self._departed.pop(member.iid, None)
        for node in list(self.table.nodes.values()):
            if node.id != member.iid:
                member._emit("added", node)

    async def leave(self, member: Discovery) -> None:
        """Let a member go: its siblings drop it now; the last one closes the hub."""
        self.members.pop(member.iid, None)
        self._departed[member.iid] = None
        if len(self._departed) > _DEPARTED_MEMORY:
            del self._departed[next(iter(self._departed))]
        node = self.table.remove(member.iid)
        if node is not None:
            self._emit("removed", node)
        if self.members:
            return
        self._running = False
        if self.key is not None:
            _HUBS.discard(self.key, self)
        self._hello_alarm.cancel()
        self._check_alarm.cancel()
        if self._seed_task is not None:
            self._seed_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._seed_task
            self._seed_task = None
        await self.transport.close()

    # -- timers -----------------------------------------------------------------

    def _hello_tick(self) -> None:
        if self._running:
            self._hello_alarm.after(self.settings.hello_interval / 1000)
            self.hello_all()

    def hello_all(self) -> None:
        """Every member says hello now."""
        for member in list(self.members.values()):
            member.hello()

    def _check_tick(self) -> None:
        if not self._running:
            return
        self._check_alarm.after(self.settings.check_interval / 1000)
        removed, promoted = self.table.sweep(self._loop.time(), self._heard)
        for node in removed:
            self._emit("removed", node)
        if promoted:
            self.hello_all()  # announce the promotion, as node-discover does

    def _heard(self, iid: str) -> float | None:
        latest: float | None = None
        for member in self.members.values():
            heard = member.heard(iid) if member.heard is not None else None
            if heard is not None and (latest is None or heard > latest):
                latest = heard
        return latest

    # -- seeds ------------------------------------------------------------------

    async def _seed_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.seed_interval / 1000)
            try:
                await self._refresh_seeds()
            except Exception:  # pragma: no cover - a bug, not a lookup failure
                log.exception("seed refresh failed")

    async def _refresh_seeds(self, *, first: bool = False) -> None:
        seeds = self.seeds
        assert seeds is not None
        # A lookup never holds the timers up for long: at most one interval,
        # and 2 s at start.
        bound = self.settings.seed_interval / 1000
        added, removed = await refresh(
            seeds, self.settings.port, min(bound, 2.0) if first else bound
        )
        if not self._running:
            return
        transport = self.transport
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
            self.hello_all()  # newcomers hear from us now, not at the next interval

    # -- datagrams in -----------------------------------------------------------

    def _receive(self, datagram: bytes, address: str) -> None:
        iid = self._repeats.get(datagram)
        if iid is not None and self.table.hello_again(iid, address, self._loop.time()):
            return  # the same hello as last time: nothing to decode
        try:
            packet = self.codec.decode(datagram)
        except DecodeError as exc:
            log.debug("dropped discovery datagram from %s: %s", address, exc)
            return
        event = packet["event"]
        if event == HELLO:
            seeds = self.seeds
            if seeds is not None and not seeds.admits(address, packet["data"].get("address")):
                log.debug("ignored a hello from %s: not among the seeds", address)
                return
            if packet["iid"] in self._departed:
                return  # a closed member's last hello, still in flight
            table = self.table
            seen = table.hello(packet, address, self._loop.time())
            if seen is None:
                if table.ignored["full"] and not self._full_reported:
                    self._full_reported = True
                    log.warning(
                        "discovery tracks %d nodes, its limit: hellos of new nodes are "
                        "ignored; raise DiscoveryOptions(max_nodes=...) if the mesh is "
                        "this large",
                        len(table.nodes),
                    )
                return
            node, is_new, changed = seen
            self._remember(node.id, datagram)
            if is_new:
                self._emit("added", node)
                # Members of this hub know the table already: no reply for them.
                if (
                    self.settings.fast_contact
                    and node.id not in self.members
                    and table.greets(node.id)
                ):
                    self._fast_contact()
            elif changed:
                self._emit("updated", node)
        elif event == GOODBYE:
            iid = packet["iid"]
            linked = any(m.linked is not None and m.linked(iid) for m in self.members.values())
            gone = self.table.goodbye(packet, address, linked=linked)
            if gone is not None:
                self._emit("removed", gone)

    def _remember(self, iid: str, datagram: bytes) -> None:
        """Keep a node's last hello, so its repeats skip the decode."""
        if self.codec.encrypted:
            return  # every ciphertext differs: nothing repeats
        last = self._last_hello.get(iid)
        if last is not None and last != datagram:
            self._repeats.pop(last, None)
        self._last_hello[iid] = datagram
        self._repeats[datagram] = iid

    def forget(self, iid: str) -> None:
        """Drop a node now; it returns with its next hello."""
        node = self.table.remove(iid)
        if node is not None:
            self._emit("removed", node)

    def _fast_contact(self) -> None:
        """Answer newcomers: one round of hellos per loop turn, within the process's budget."""
        if self._reply_pending or not self._running:
            return
        budget = _BUDGETS.setdefault((), ReplyBudget)
        if not budget.take(self._loop.time()):
            return  # they hear the next regular hello
        self._reply_pending = True
        self._loop.call_soon(self._fast_hello)

    def _fast_hello(self) -> None:
        self._reply_pending = False
        if self._running:
            self.hello_all()

    def _emit(self, event: str, node: Node) -> None:
        if event == "removed":
            last = self._last_hello.pop(node.id, None)
            if last is not None:
                self._repeats.pop(last, None)
        for member in list(self.members.values()):
            if member.iid != node.id:
                member._emit(event, node)


#: Shared hubs of each event loop, by transport factory, settings and scope.
_HUBS: PerLoop[_Hub] = PerLoop("discovery hub")


class Discovery:
    """Announces one component and tracks its peers.

    Components of one process whose settings (and transport factory) are
    equal share one hub: one socket, one decode, one node table. Each still
    announces itself with its own hello, and sees every node but itself.

    Args:
        advertisement: The component's advertisement; it is sent by reference,
            so later changes (a bound port, new handler types) go out with the
            next hello.
        settings: Resolved discovery settings.
        transport_factory: Builds the transport; default UDP, Redis or etcd by
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
        self._factory = transport_factory or DEFAULT_NETWORK.discovery_transport
        self._hub: _Hub | None = None
        self._listeners: list[NodeListener] = []
        self._running = False
        self._hellos_sent = 0
        self._announced: tuple[str, ...] = ()
        # What a registry medium holds of this node.
        self._entry = Entry()
        #: Set by the component: whether it holds a live link to a node. A
        #: goodbye for such a node is left to the link
        #: (:meth:`~coterie.protocol.nodes.NodeTable.goodbye`).
        self.linked: Callable[[str], bool] | None = None
        #: Set by the component: when a live link last carried a frame from a
        #: node (loop time), or ``None``. Such traffic keeps a node whose
        #: hellos are lost (:meth:`~coterie.protocol.nodes.NodeTable.sweep`).
        self.heard: Callable[[str], float | None] | None = None

    # -- public -----------------------------------------------------------

    @property
    def table(self) -> NodeTable:
        """The node table (shared with the process's other components).

        Raises:
            RuntimeError: Before :meth:`start`.
        """
        if self._hub is None:
            raise RuntimeError("discovery has no node table before start()")
        return self._hub.table

    @property
    def nodes(self) -> Mapping[str, Node]:
        """Live peers by instance id (every node known but this one)."""
        if self._hub is None:
            return {}
        return _Peers(self._hub.table.nodes, self.iid)

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
        seeds = self._hub.seeds if self._hub is not None else None
        return seeds.members if seeds is not None else None

    @property
    def sharing(self) -> int:
        """How many components (this one included) share this discovery."""
        return len(self._hub.members) if self._hub is not None else 0

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
        table = self.table
        return {
            "isMaster": table.is_master,
            "isMasterEligible": table.is_master_eligible,
            "weight": table.weight,
            "address": announced,
            "advertisement": self.advertisement,
            "id": self.iid,
            "processId": PROCESS_ID,
            "processCommand": _process_command(),
        }

    async def start(self) -> None:
        """Join (or open) the process's discovery, say hello."""
        if self._running:
            return
        self._hub = await self._acquire()
        self._hub.join(self)
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
        if self.settings.log and self.settings.hello_logs and self._announced:
            log.info("%s advertises %s", adv.get("name"), ", ".join(self._announced))

    async def _acquire(self) -> _Hub:
        transport = self._factory(self.settings)  # not started: costs nothing if unused
        if isinstance(transport, Registry):  # one registration per component: not shared
            transport.attach(Registration(self.iid, self.advertisement, self.forget, self._knows))
            hub = _Hub(None, self.settings, transport)
            await hub.start()
            return hub
        # A medium that carries groups apart is shared only within a group.
        scope = transport.scope(self.advertisement) if isinstance(transport, Scoped) else None
        key = (self._factory, self.settings, scope)
        return await _HUBS.join(key, lambda: _Hub(key, self.settings, transport), _Hub.start)

    def hello(self) -> None:
        """Send a hello now, naming in each copy the address it leaves from."""
        hub = self._hub
        if not self._running or hub is None:
            return
        transport = hub.transport
        if isinstance(transport, Registry):
            transport.send_each(self._encode_change)
        elif not isinstance(transport, Announcing) or self.settings.advertise_address:
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

    def _encode_change(self, address: str) -> bytes | None:
        """This node's hello for a registry: only when it says something new, else ``None``.

        The rule is :meth:`coterie.protocol.groups.Entry.changed`.
        """
        data = self.me(address)
        self._announced = (data["address"],)
        return self._encode_hello(address) if self._entry.changed(data) else None

    def _encode_hello(self, address: str | None) -> bytes | None:
        data = self.me(address)
        if address is None:
            self._announced = (data["address"],)
        return self._encode(make_packet(HELLO, PROCESS_ID, self.iid, self.settings.hostname, data))

    async def close(self) -> None:
        """Say goodbye (unless disabled) and leave the process's discovery."""
        hub = self._hub
        if not self._running or hub is None:
            return
        # A registry's entry goes when its transport closes: no goodbye to it.
        if self.settings.goodbye and not isinstance(hub.transport, Registry):
            host = self.settings.hostname
            datagram = self._encode(
                make_packet(GOODBYE, PROCESS_ID, self.iid, host, {"id": self.iid})
            )
            if datagram is not None:
                hub.transport.send(datagram)
        self._running = False
        await hub.leave(self)

    def forget(self, iid: str) -> None:
        """Drop a node now (a link proved it dead); it returns with its next hello."""
        if self._hub is not None:
            self._hub.forget(iid)

    def _knows(self, iid: str) -> bool:
        return iid in self.nodes

    # -- internals --------------------------------------------------------

    def _encode(self, packet: dict[str, Any]) -> bytes | None:
        assert self._hub is not None
        try:
            return self._hub.codec.encode(packet)
        except ValueError as exc:
            log.error("%s", exc)
            return None

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
