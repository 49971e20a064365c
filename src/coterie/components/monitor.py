"""Monitor: who is on the mesh, and who is linked to whom.

Design: a monitor advertises ``type: "monitor"`` and no ``axon_type``, so it
pairs with nothing; every node discovery reports reaches it through the
``_foreign_node`` hook, whatever its key (as cote's monitor lists all
nodes). It listens on TCP like a publisher's counterpart: Requesters and
Subscribers whose key starts with the monitor's key connect and send
``["status", {"id": <their iid>, "nodes": [<iids they link to>]}]`` every
status interval. The monitor keeps:

- the nodes, from discovery (name, role, address, port, key, namespace, ...);
- the connection graph, from the latest status of each node. A node's edges
  are dropped when it leaves discovery or when every link it reported on
  closes;
- the traffic on those edges: a coterie requester's status also counts the
  requests and error replies on each link (``"traffic"``), a subscriber's
  the events, and two reports in a row give them a second (:class:`LinkRate`). cote's
  reports carry no counts, so their edges have no rate.

Every reporter may be hostile, so the graph is bounded: a link reports for
one node id only (the first it names; a requester reports for itself), a
report counts only once that id is a node discovery knows (until then the
link's latest report waits, one per link), and a node has at most
``max_edges`` links, each target id at most :data:`MAX_ID_LENGTH`
characters. The graph therefore never holds more ids than discovery's
bounded node table. Reports ignored for these rules are counted in
:attr:`Monitor.ignored_statuses`; the first truncated report of a node is
one warning.

:meth:`Monitor.snapshot` returns an immutable view; :meth:`Monitor.on_change`
registers callbacks run on every change (:meth:`Monitor.off_change` removes
one); :meth:`Monitor.wait_until` waits for a condition on the snapshot (handy
in tests and tools). :meth:`MonitorSnapshot.rows` is the monitor's table as
plain text, shared by the terminal view and the web page.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from coterie._logbudget import LogBudget
from coterie.components.listening import ListeningComponent
from coterie.protocol.nodes import Node
from coterie.protocol.pairing import ROLE_NAMES, role_of
from coterie.protocol.status import (
    DEFAULT_MAX_EDGES,
    Counts,
    LinkRate,
    counts,
    decode_status,
    rates,
    reports_for,
    targets,
)
from coterie.transport.link import Link

__all__ = [
    "ROLE_NAMES",
    "ROLE_ORDER",
    "TABLE_COLUMNS",
    "ChangeHandler",
    "LinkRate",
    "Monitor",
    "MonitorSnapshot",
    "NodeInfo",
]

log = logging.getLogger("coterie.monitor")

#: Display order of roles in the monitor's table; other roles come last.
ROLE_ORDER = ("responder", "requester", "publisher", "subscriber", "monitor")

#: Columns of the monitor's table (:meth:`MonitorSnapshot.rows`).
TABLE_COLUMNS = ("Name", "Role", "Id", "Address", "Port", "Key", "Namespace", "Linked to")

#: ``callback(kind, node_id)``; kind is ``added``, ``updated``, ``removed`` or ``status``.
ChangeHandler = Callable[[str, str], None]


@dataclass(frozen=True, slots=True)
class NodeInfo:
    """One node as the monitor sees it.

    Attributes:
        id: Instance id.
        name: Advertised name.
        role: ``requester``, ``responder``, ``publisher``, ``subscriber``,
            ``monitor``, ...
        address: Address its hellos come from.
        port: TCP port it listens on, if any.
        host_name: Host name it announced.
        process_id: Its process id on the mesh.
        key: Its advertisement key (environment included).
        namespace: Its namespace, if any.
        advertisement: The whole advertisement.
        connections: Ids of the nodes it reported links to (empty until its
            first status, and for roles that do not report).
    """

    id: str
    name: str
    role: str
    address: str
    port: int | None
    host_name: str
    process_id: str
    key: str | None
    namespace: str | None
    advertisement: dict[str, Any]
    connections: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class MonitorSnapshot:
    """The mesh at one moment.

    Attributes:
        nodes: Every node discovered, by id (the monitor itself excluded).
        connections: Reported links: node id to the ids it is linked to. It
            may name nodes not (yet) in ``nodes``.
        rates: Traffic on reported links, by ``(from_id, to_id)``, for the
            links whose reporter counts it (coterie requesters) once two of
            its reports have arrived; a link missing here has no known rate.
    """

    nodes: dict[str, NodeInfo] = field(default_factory=dict)
    connections: dict[str, tuple[str, ...]] = field(default_factory=dict)
    rates: dict[tuple[str, str], LinkRate] = field(default_factory=dict)

    @property
    def edges(self) -> list[tuple[str, str]]:
        """Reported links as ``(from_id, to_id)`` pairs, sorted."""
        return sorted((a, b) for a, targets in self.connections.items() for b in targets)

    def by_role(self, role: str) -> list[NodeInfo]:
        """Nodes of one role."""
        return [n for n in self.nodes.values() if n.role == role]

    def name_of(self, node_id: str) -> str:
        """A node's name, or a short id when it is unknown."""
        info = self.nodes.get(node_id)
        return info.name if info is not None else node_id[:8]

    def sorted_nodes(self) -> list[NodeInfo]:
        """Nodes in table order: by role (:data:`ROLE_ORDER`, others last), name, id."""

        def key(node: NodeInfo) -> tuple[int, str, str]:
            rank = ROLE_ORDER.index(node.role) if node.role in ROLE_ORDER else len(ROLE_ORDER)
            return rank, node.name, node.id

        return sorted(self.nodes.values(), key=key)

    def rows(self) -> list[tuple[str, ...]]:
        """The monitor's table: one row of :data:`TABLE_COLUMNS` per node, as text.

        Rows follow :meth:`sorted_nodes`. "Linked to" names each target with
        its short id; it is ``-`` before a node's first status report (and
        for roles that send none) and ``(none)`` when it reported no link.
        """
        rows: list[tuple[str, ...]] = []
        for node in self.sorted_nodes():
            linked = ", ".join(f"{self.name_of(t)} ({t[:8]})" for t in node.connections)
            rows.append(
                (
                    node.name,
                    node.role,
                    node.id[:8],
                    node.address,
                    str(node.port) if node.port is not None else "-",
                    node.key or "",
                    node.namespace or "",
                    linked or ("-" if node.id not in self.connections else "(none)"),
                )
            )
        return rows


class Monitor(ListeningComponent):
    """Watches the mesh: nodes from discovery, links from status reports.

    Args:
        name: Name shown to peers.
        host: Address to listen on for status reports.
        port: TCP port; 0 picks a free one.
        max_edges: Most links kept from one node's status report.
        **kwargs: See :class:`~coterie.components.base.Component`. The
            ``key`` decides which components report to this monitor: those
            whose key starts with it (the default empty key takes all of
            the environment).
    """

    role = ""
    opposite = ""

    def __init__(
        self,
        name: str | None = None,
        *,
        host: str = "0.0.0.0",
        port: int = 0,
        max_edges: int = DEFAULT_MAX_EDGES,
        **kwargs: Any,
    ) -> None:
        if max_edges < 0:
            raise ValueError(f"max_edges must not be negative, got {max_edges}")
        extra = dict(kwargs.pop("advertisement", None) or {})
        extra["type"] = "monitor"
        super().__init__(name or "monitor", advertisement=extra, host=host, port=port, **kwargs)
        self._nodes: dict[str, Node] = {}
        self._connections: dict[str, tuple[str, ...]] = {}
        # Which links each node's status came on, to drop edges when they close.
        self._reporters: dict[str, set[Link]] = {}
        # Each reporter's last traffic counts and when they came; the rates from them.
        self._counts: dict[str, tuple[float, Counts]] = {}
        self._rates: dict[str, dict[str, LinkRate]] = {}
        self._callbacks: list[ChangeHandler] = []
        self._change = asyncio.Event()
        self.max_edges = max_edges
        #: Status messages received, and those ignored (another id than the
        #: link's, or not a discovered node yet).
        self.statuses = 0
        self.ignored_statuses = 0
        self._truncated: set[str] = set()
        # Links whose report waits for discovery to know the node, by node id
        # (one id per link: bounded by the link cap).
        self._waiting: dict[str, set[Link]] = {}
        self._warnings = LogBudget(log)

    # -- public ----------------------------------------------------------------

    def on_change(self, callback: ChangeHandler) -> ChangeHandler:
        """Call ``callback(kind, node_id)`` on every change; usable as a decorator.

        ``kind`` is ``added``, ``updated``, ``removed`` (discovery) or
        ``status`` (a node reported its links, or its report was dropped).
        """
        if not callable(callback):
            raise TypeError("callback is not callable")
        self._callbacks.append(callback)
        return callback

    def off_change(self, callback: ChangeHandler) -> None:
        """Stop calling ``callback``; a callback never registered is ignored."""
        with contextlib.suppress(ValueError):
            self._callbacks.remove(callback)

    def snapshot(self) -> MonitorSnapshot:
        """An immutable view of the nodes and their reported links."""
        nodes = {
            node_id: NodeInfo(
                id=node_id,
                name=str(node.advertisement.get("name", "")),
                role=role_of(node.advertisement),
                address=node.address,
                port=node.port,
                host_name=node.host_name,
                process_id=node.process_id,
                key=node.advertisement.get("key"),
                namespace=node.advertisement.get("namespace"),
                advertisement=dict(node.advertisement),
                connections=self._connections.get(node_id, ()),
            )
            for node_id, node in self._nodes.items()
        }
        rates = {
            (node_id, target): rate
            for node_id, targets in self._rates.items()
            for target, rate in targets.items()
        }
        return MonitorSnapshot(nodes, dict(self._connections), rates)

    async def wait_until(
        self, predicate: Callable[[MonitorSnapshot], bool], timeout: float = 10.0
    ) -> MonitorSnapshot:
        """Wait until ``predicate(snapshot)`` holds and return that snapshot.

        Raises:
            TimeoutError: When it does not hold within ``timeout`` seconds.
        """
        async with asyncio.timeout(timeout):
            while True:
                self._change.clear()
                snap = self.snapshot()
                if predicate(snap):
                    return snap
                await self._change.wait()

    # -- discovery -------------------------------------------------------------

    def _foreign_node(self, event: str, node: Node) -> None:
        if event == "removed":
            if self._nodes.pop(node.id, None) is None:
                return
            self._connections.pop(node.id, None)
            self._reporters.pop(node.id, None)
            self._forget_traffic(node.id)
            self._truncated.discard(node.id)
        else:
            known = node.id in self._nodes
            self._nodes[node.id] = node
            if not known:
                self._changed(event, node.id)
                self._apply_waiting(node.id)
                return
        self._changed(event, node.id)

    def _apply_waiting(self, node_id: str) -> None:
        """Reports that came before discovery knew ``node_id`` count now."""
        for link in self._waiting.pop(node_id, set()):
            reporter = link.context
            if isinstance(reporter, _Reporter) and reporter.waiting is not None:
                (targets, traffic), reporter.waiting = reporter.waiting, None
                self._record(link, node_id, targets, traffic)

    def _changed(self, kind: str, node_id: str) -> None:
        self._change.set()
        for callback in list(self._callbacks):
            try:
                callback(kind, node_id)
            except Exception:
                log.exception("monitor change callback failed")

    # -- lifecycle -------------------------------------------------------------

    # -- status ----------------------------------------------------------------

    def _on_frame(self, link: Link, args: list[Any]) -> None:
        status = decode_status(args)  # the rules: coterie.protocol.status
        if status is None:
            log.debug("ignored a frame that is no status from %s", link.peer)
            return
        node_id = status.id
        self.statuses += 1
        reporter = link.context
        claimed = reporter.id if isinstance(reporter, _Reporter) else None
        if not reports_for(claimed, node_id):
            self.ignored_statuses += 1
            return
        if not isinstance(reporter, _Reporter):
            reporter = link.context = _Reporter(node_id)
        kept, named = targets(status.nodes, self.max_edges)
        if named > len(kept) and node_id not in self._truncated:
            self._truncated.add(node_id)
            self._warnings.warning(
                "%s kept %d of the %d links node %s reported from %s (max_edges)",
                self.name,
                len(kept),
                named,
                node_id,
                link.peer,
            )
        if node_id not in self._nodes:  # not discovered (yet): only its latest report waits
            self.ignored_statuses += 1
            reporter.waiting = (kept, status.traffic)
            self._waiting.setdefault(node_id, set()).add(link)
            return
        self._record(link, node_id, kept, status.traffic)

    def _record(self, link: Link, node_id: str, targets: tuple[str, ...], traffic: Any) -> None:
        if not link.proven:  # a known node reporting for itself: keep its link at the cap
            self._prove(link)
        self._reporters.setdefault(node_id, set()).add(link)
        rates_changed = self._traffic(node_id, targets, traffic)
        if self._connections.get(node_id) != targets or rates_changed:
            self._connections[node_id] = targets
            self._changed("status", node_id)

    def _traffic(self, node_id: str, kept: tuple[str, ...], field: Any) -> bool:
        """Turn a report's cumulative counts into rates; returns whether they changed.

        The counts and the rates are :mod:`coterie.protocol.status`'s
        (:func:`~coterie.protocol.status.counts`,
        :func:`~coterie.protocol.status.rates`); a report without traffic
        (cote's) forgets the node's.
        """
        now_counts = counts(field, kept)
        if now_counts is None:
            return self._forget_traffic(node_id)
        now = asyncio.get_running_loop().time()
        before = self._counts.get(node_id)
        self._counts[node_id] = (now, now_counts)
        found = rates(before, now, now_counts)
        changed = self._rates.get(node_id, {}) != found
        self._rates[node_id] = found
        return changed

    def _forget_traffic(self, node_id: str) -> bool:
        self._counts.pop(node_id, None)
        return bool(self._rates.pop(node_id, None))

    def _on_link_closed(self, link: Link, exc: Exception | None) -> None:
        super()._on_link_closed(link, exc)
        reporter = link.context
        if not isinstance(reporter, _Reporter):
            return
        node_id = reporter.id
        waiting = self._waiting.get(node_id)
        if waiting is not None:
            waiting.discard(link)
            if not waiting:
                del self._waiting[node_id]
        reporters = self._reporters.get(node_id)
        if reporters is None:
            return
        reporters.discard(link)
        if not reporters:
            del self._reporters[node_id]
            self._forget_traffic(node_id)
            if self._connections.pop(node_id, None) is not None:
                self._changed("status", node_id)


class _Reporter:
    """What a monitor's link reports for: one node id, and its report waiting for discovery."""

    __slots__ = ("id", "waiting")

    def __init__(self, node_id: str) -> None:
        self.id = node_id
        #: The latest report (targets, traffic) before discovery knew the node.
        self.waiting: tuple[tuple[str, ...], Any] | None = None
