"""The node table: who is out there, from hellos, goodbyes and silence (sans-I/O).

Design: :class:`NodeTable` is node-discover's bookkeeping with the clock passed
in. Feed it packets (:meth:`NodeTable.hello`, :meth:`NodeTable.goodbye`) and
call :meth:`NodeTable.sweep` on a timer; it returns what changed and never
does I/O, so every rule (timeouts, own packets, master election, which
goodbye counts, which newcomer gets a fast-contact reply) is unit tested
with a fake clock.

One table may serve every component of a process: built without an ``iid``
it ignores no component's packets, and each component leaves itself out of
what it reads (the discovery service does).

A sweep costs what it removes, not the size of the table: nodes are kept in
the order they were last heard, so a sweep reads from the oldest and stops
at the first one still alive, and the master election keeps its counts as
hellos arrive instead of walking every node. That keeps 10,000 nodes from
blocking the event loop on every check.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from coterie.protocol.budget import TokenBucket

__all__ = ["GAP_TIMEOUTS", "Node", "NodeTable", "ReplyBudget", "Sweep", "ipv4_numbers"]

#: How many node timeouts a node silent on discovery is kept while a link to
#: it stays open (and idle: traffic keeps it with no bound). An open link is
#: watched by TCP keepalive, so a dead one closes within seconds and the node
#: goes then; the bound only ends a gap that never ends (60 s at cote's 5 s;
#: read at the sweeps, so the node goes within one more node timeout).
GAP_TIMEOUTS = 12


@dataclass(slots=True)
class Node:
    """A peer component seen on the discovery channel.

    Attributes:
        id: The component's instance id (``iid``).
        process_id: The id of its process (``pid``).
        host_name: The host name it announced.
        address: The source address of its last hello ("0.0.0.0" when the
            medium carries none, as Redis).
        advertisement: Its advertisement (role, key, namespace, port, ...).
        is_master: Whether it claims to be the elected master.
        is_master_eligible: Whether it may be elected.
        weight: Election weight; older processes weigh more.
        last_seen: Clock reading (seconds) of its last sign of life: a
            hello, traffic on its link, or its open link in a discovery gap.
        last_hello: Clock reading (seconds) of its last hello.
        data: The last hello's ``data`` object as received.
    """

    id: str
    process_id: str
    host_name: str
    address: str
    advertisement: dict[str, Any]
    is_master: bool = False
    is_master_eligible: bool = False
    weight: float = 0.0
    last_seen: float = 0.0
    last_hello: float = 0.0
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def port(self) -> int | None:
        """The TCP port it serves on, if it binds one."""
        port = self.advertisement.get("port")
        return port if isinstance(port, int) and 0 < port < 65536 else None

    @property
    def advertised(self) -> str:
        """The address its hello announces ("" when none).

        coterie announces where peers should connect; node-discover always
        says "127.0.0.1", which :meth:`connect_host` ignores.
        """
        value = self.data.get("address")
        return value if isinstance(value, str) else ""

    def connect_host(self, use_host_names: bool) -> str:
        """The host to open a link to.

        In order: the announced address, unless it is loopback, unspecified
        or missing (node-discover announces 127.0.0.1 whatever the truth);
        the host name, when host names are in use or the medium carries no
        source address (Redis); the source address. A limited broadcast sent
        from an unaddressed host arrives from 0.0.0.0, which means "this
        host" when connecting.
        """
        if _reachable(self.advertised):
            return self.advertised
        source_known = self.address not in ("", "0.0.0.0")
        if self.host_name and (use_host_names or not source_known):
            return self.host_name
        return self.address if source_known else "127.0.0.1"


def ipv4_numbers(address: str) -> list[int] | None:
    """The four numbers of a dotted-quad IPv4 address, or ``None``.

    As strict as :mod:`ipaddress` (four decimal parts of 0-255, no leading
    zeros), without importing it (about 0.3 MiB resident) or ``socket`` (the
    protocol package does no I/O).
    """
    parts = address.split(".")
    if len(parts) != 4:
        return None
    numbers = []
    for part in parts:
        if not (part.isascii() and part.isdigit()) or len(part) > 3:
            return None
        if len(part) > 1 and part[0] == "0":
            return None
        number = int(part)
        if number > 255:
            return None
        numbers.append(number)
    return numbers


def _reachable(address: str) -> bool:
    """Whether an announced address can reach a node from another host."""
    if not address or address.lower() == "localhost":
        return False
    quad = ipv4_numbers(address)  # the common case, without ipaddress
    if quad is not None:
        return quad[0] != 127 and quad != [0, 0, 0, 0]
    if ":" not in address:
        return True  # a host name given on purpose (not IPv4, nor IPv6 without a colon)
    import ipaddress  # IPv6, or not an address at all

    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return True  # a host name given on purpose
    return not (ip.is_loopback or ip.is_unspecified)


class Sweep(NamedTuple):
    """What one :meth:`NodeTable.sweep` found.

    Attributes:
        removed: The nodes dropped for silence.
        promoted: Whether this node just became master; node-discover then
            says hello at once, to announce it.
    """

    removed: list[Node]
    promoted: bool


#: When a link last carried a frame from a node (clock of the table), or ``None``.
LinkHeard = Callable[[str], float | None]


class NodeTable:
    """Tracks peers for one component, or for every component of a process.

    Args:
        iid: This component's instance id (its own packets are ignored);
            ``None`` for a table shared by a process's components, which
            records them all.
        pid: This process's id.
        node_timeout: Seconds of silence after which a node is dropped.
        master_timeout: Seconds a silent master still counts as present.
        ignore_process: Ignore other components of this same process.
        weight: This node's election weight.
        master_eligible: Whether this node may become master.
        max_nodes: Most nodes tracked at once; hellos of further new ids
            are ignored (a flood of forged ids cannot grow the table) and
            counted in ``ignored["full"]``.
        gap_bound: Seconds without a hello after which a node reached only
            by an idle open link is dropped all the same
            (:data:`GAP_TIMEOUTS` node timeouts by default; see :meth:`sweep`).

    Forgery rules (beyond node-discover; a datagram's source address is the
    one fact a forger on another host does not choose freely):

    - a node is pinned to the source address of its first hello and to the
      TCP port it first advertised: a hello that reuses its id from another
      address, or with another port, is ignored and counted in
      :attr:`ignored`;
    - a goodbye is honoured only from the node's own address, and never for
      a node a live link reaches: the link itself says when it ends.

    Time (``now``) must not go backwards between calls.
    """

    def __init__(
        self,
        iid: str | None,
        pid: str,
        *,
        node_timeout: float,
        master_timeout: float,
        ignore_process: bool = False,
        weight: float = 0.0,
        master_eligible: bool = True,
        max_nodes: int = 10_000,
        gap_bound: float | None = None,
    ) -> None:
        self.max_nodes = max_nodes
        self.gap_bound = GAP_TIMEOUTS * node_timeout if gap_bound is None else gap_bound
        #: Hellos and goodbyes ignored, by reason: forged ``address`` or
        #: ``port``, a ``full`` table, a ``goodbye`` from another address, a
        #: goodbye for a ``linked`` node.
        self.ignored: dict[str, int] = {
            "address": 0,
            "port": 0,
            "full": 0,
            "goodbye": 0,
            "linked": 0,
        }
        self.iid = iid
        self.pid = pid
        self.node_timeout = node_timeout
        self.master_timeout = master_timeout
        self.ignore_process = ignore_process
        self.weight = weight
        self.is_master = False
        self.is_master_eligible = master_eligible
        self.nodes: dict[str, Node] = {}
        # Node ids, least recently heard first (what a sweep reads).
        self._order: OrderedDict[str, None] = OrderedDict()
        # The election's inputs, kept as hellos arrive: claimed masters, and
        # eligible non-masters that weigh more than this node.
        self._masters: set[str] = set()
        self._heavier: set[str] = set()
        # Ids seen before and since dropped, oldest first (bounded).
        self._gone: OrderedDict[str, None] = OrderedDict()

    def is_own(self, packet: dict[str, Any]) -> bool:
        """Whether a packet comes from this component (or process, if ignored)."""
        if self.iid is not None and packet.get("iid") == self.iid:
            return True
        return self.ignore_process and packet.get("pid") == self.pid

    def hello(
        self, packet: dict[str, Any], address: str, now: float
    ) -> tuple[Node, bool, bool] | None:
        """Record a hello.

        Returns:
            The node, whether it is new, and whether its advertisement changed;
            ``None`` for an own packet or an ignored one (see :attr:`ignored`).
        """
        if self.is_own(packet):
            return None
        data: dict[str, Any] = packet["data"]
        iid: str = packet["iid"]
        node = self.nodes.get(iid)
        is_new = node is None
        if node is not None:
            if node.address != address:
                self.ignored["address"] += 1
                return None
            port = (
                data["advertisement"].get("port")
                if isinstance(data["advertisement"], dict)
                else None
            )
            if node.port is not None and port != node.port:
                self.ignored["port"] += 1
                return None
        elif len(self.nodes) >= self.max_nodes:
            self.ignored["full"] += 1
            return None
        weight = data.get("weight")
        if node is None:
            node = Node(
                id=iid,
                process_id=str(packet.get("pid", "")),
                host_name=str(packet.get("hostName", "")),
                address=address,
                advertisement=data["advertisement"],
            )
            self.nodes[iid] = node
            self._order[iid] = None
        else:
            self._order.move_to_end(iid)
        changed = not is_new and node.advertisement != data["advertisement"]
        node.address = address
        node.host_name = str(packet.get("hostName", node.host_name))
        node.advertisement = data["advertisement"]
        node.is_master = data.get("isMaster") is True
        node.is_master_eligible = data.get("isMasterEligible") is True
        node.weight = float(weight) if isinstance(weight, int | float) else 0.0
        node.last_seen = node.last_hello = now
        node.data = data
        self._elect(node)
        if node.is_master and self.is_master and node.weight > self.weight:
            self.is_master = False  # another master outranks us: step down
        return node, is_new, changed

    def hello_again(self, iid: str, address: str, now: float) -> bool:
        """Record a hello byte for byte equal to the last one ``iid`` had recorded.

        It says nothing new, so only the clock moves: the adapter may skip
        decoding such a datagram (most hellos are repeats). The forgery rules
        hold as for :meth:`hello`.

        Returns:
            Whether it was recorded; ``False`` when the node is unknown or the
            datagram came from another address (then read it in full).
        """
        node = self.nodes.get(iid)
        if node is None or node.address != address:
            return False
        node.last_seen = node.last_hello = now
        self._order.move_to_end(iid)
        if node.is_master and self.is_master and node.weight > self.weight:
            self.is_master = False  # another master outranks us: step down
        return True

    def greets(self, iid: str) -> bool:
        """Whether a node just added calls for a fast-contact reply.

        Only a newcomer does: a node seen before and dropped (silent for a
        while, or forgotten when a link failed) knew the mesh all along, so
        answering its return would only set the whole mesh off again.
        """
        return iid not in self._gone

    def goodbye(self, packet: dict[str, Any], address: str, *, linked: bool = False) -> Node | None:
        """Forget a node that said goodbye; returns it if so.

        Args:
            packet: The goodbye.
            address: Its source address; only the node's own counts.
            linked: Whether a live link reaches the node. Then the goodbye is
                left to the link, which a forger cannot fake: the node says so
                on the link itself, or the link closes.
        """
        if self.is_own(packet):
            return None
        node = self.nodes.get(packet["iid"])
        if node is None:
            return None
        if node.address != address:
            self.ignored["goodbye"] += 1
            return None
        if linked:
            self.ignored["linked"] += 1
            return None
        return self._drop(node.id)

    def sweep(self, now: float, heard: LinkHeard | None = None) -> Sweep:
        """Drop silent nodes and run the master election.

        Args:
            now: The clock.
            heard: When an open link to a node last carried bytes (any
                value, 0 too, for an open link that carried none), ``None``
                without one. A link is a sign of life, so lost hellos (a
                discovery gap) do not tear down a working link: a node silent
                on discovery but heard on its link within ``node_timeout`` is
                kept (a busy link); one whose link is open but idle is kept
                until it has said no hello for :attr:`gap_bound` (TCP
                keepalive closes a dead link within seconds, and the node
                goes with it). cote never drops a link for a missing hello.

        Returns:
            The nodes dropped, and whether this node was promoted to master.
        """
        removed: list[Node] = []
        masters = 0
        nodes = self.nodes
        while self._order:
            iid = next(iter(self._order))
            node = nodes[iid]
            silent = now - node.last_seen
            if silent <= self.node_timeout:
                break
            link = heard(iid) if heard is not None else None
            if link is not None:
                if now - link <= self.node_timeout:
                    node.last_seen = link  # later than its last hello: it is alive
                    self._order.move_to_end(iid)
                    continue
                if now - node.last_hello <= self.gap_bound:
                    node.last_seen = now  # its open link outlives the gap
                    self._order.move_to_end(iid)
                    continue
            if node.is_master and silent < self.master_timeout:
                masters += 1
            removed.append(node)
            self._drop(iid)
        masters += len(self._masters)
        promoted = (
            not self.is_master and masters < 1 and self.is_master_eligible and not self._heavier
        )
        if promoted:
            self.is_master = True
        return Sweep(removed, promoted)

    def check(self, now: float) -> list[Node]:
        """Drop silent nodes and run the master election (:meth:`sweep`).

        Returns:
            The nodes dropped for silence.
        """
        return self.sweep(now).removed

    def remove(self, iid: str) -> Node | None:
        """Forget a node, e.g. when its link proves it dead."""
        return self._drop(iid) if iid in self.nodes else None

    def retain(self, keep: Callable[[Node], bool]) -> list[Node]:
        """Forget every node ``keep`` refuses (seeds that no longer list it)."""
        return [self._drop(n.id) for n in list(self.nodes.values()) if not keep(n)]

    def _elect(self, node: Node) -> None:
        iid = node.id
        self._masters.discard(iid)
        self._heavier.discard(iid)
        if node.is_master:
            self._masters.add(iid)
        elif node.is_master_eligible and node.weight > self.weight:
            self._heavier.add(iid)

    def _drop(self, iid: str) -> Node:
        node = self.nodes.pop(iid)
        del self._order[iid]
        self._masters.discard(iid)
        self._heavier.discard(iid)
        self._gone[iid] = None
        self._gone.move_to_end(iid)
        if len(self._gone) > self.max_nodes:
            self._gone.popitem(last=False)
        return node


class ReplyBudget(TokenBucket):
    """The fast-contact budget: the one token bucket with its defaults (time by argument).

    Fast contact answers a newcomer's hello at once. Without a bound, a flood
    of hellos with fresh ids makes every node answer each one: an amplifier.
    At most ``rate`` replies a second (``burst`` at once) are allowed; the
    discovery service also coalesces the newcomers of one loop turn into one
    reply, and past the budget newcomers wait for the next regular hello.
    :attr:`refused` counts the replies refused for want of budget.

    Args:
        rate: Replies a second in the long run.
        burst: Replies allowed back to back.
    """

    __slots__ = ()

    def __init__(self, rate: float = 10.0, burst: int = 5) -> None:
        super().__init__(rate, burst)
