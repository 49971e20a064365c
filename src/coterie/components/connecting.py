"""The connecting roles' base: one outgoing link to each paired node.

Design: Requesters and Subscribers *open* links (to responders, to
publishers), and more to monitors, through the
:class:`~coterie.components.monitorable.StatusReports` part each holds. What
they share is here, once: a :class:`~coterie.transport.peers.Peers` per kind
of peer, made by :meth:`ConnectingComponent._make_peers` with this
component's TLS, network, frame bound and host-name setting, reporting a
refused connection to discovery (``forget``) and every link to the observer;
discovery's added, updated and removed nodes reach the paired peers'
``Peers``; ``connected``, ``wait_connected``, the status report's nodes and
closing follow from it.

A role only says what its links carry: it overrides :meth:`_on_frame`,
:meth:`_link_up` and :meth:`_link_down` (each calling the base first), and
extends the node hooks when it keeps more state per peer (the requester's
router).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, Self

from coterie.components.base import Component
from coterie.components.monitorable import DEFAULT_STATUS_INTERVAL, StatusReports
from coterie.protocol.nodes import Node
from coterie.transport.link import Link
from coterie.transport.peers import Peer, Peers

__all__ = ["ConnectingComponent"]


class ConnectingComponent(Component):
    """A component that links to the nodes it pairs with: Requester, Subscriber.

    Args:
        status_interval: Seconds between status reports to monitors; see
            :mod:`coterie.components.monitorable`.
        *args: Passed on to :class:`~coterie.components.base.Component`.
        **kwargs: Passed on to :class:`~coterie.components.base.Component`.
    """

    #: What the paired peers are, for log lines and task names.
    peer_label: ClassVar[str] = "peer"

    def __init__(self, *args: Any, status_interval: float | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: The links to paired peers.
        self._links = self._make_peers(
            self.peer_label, on_frame=self._on_frame, on_up=self._link_up, on_down=self._link_down
        )
        if status_interval is None:
            status_interval = self.variables.status_interval or DEFAULT_STATUS_INTERVAL
        if not status_interval > 0:
            raise ValueError(f"status_interval must be positive seconds, got {status_interval!r}")
        #: Status reports to monitors (a part, :mod:`coterie.components.monitorable`).
        self._reports = StatusReports(self, status_interval)

    # -- public ------------------------------------------------------------------

    @property
    def connected(self) -> int:
        """How many paired peers have a live link."""
        return self._links.connected

    async def wait_connected(self, count: int = 1, timeout: float = 10.0) -> None:
        """Wait until at least ``count`` paired peers are linked.

        Raises:
            TimeoutError: When they are not within ``timeout`` seconds.
        """
        await self._links.wait_linked(count, timeout)

    @property
    def status_interval(self) -> float:
        """Seconds between status reports to monitors."""
        return self._reports.status_interval

    @property
    def monitors(self) -> int:
        """How many monitors this component has a live status link to."""
        return self._reports.monitors

    @property
    def statuses_sent(self) -> int:
        """Status reports sent to monitors so far."""
        return self._reports.statuses_sent

    def status(self) -> dict[str, Any]:
        """The status object this component reports to monitors.

        ``{"id": <own iid>, "nodes": [<linked peer iids>]}`` as cote's; a
        requester adds ``"traffic": {<responder iid>: {"requests": n,
        "errors": n}}`` and a subscriber ``{<publisher iid>: {"events": n}}``,
        counted since each link came up; cote's monitor ignores the field.
        """
        return self._reports.status()

    async def start(self) -> Self:
        """Start the component; status reports begin when a monitor appears."""
        self._reports.start()
        return await super().start()

    async def close(self) -> None:
        """Stop reporting, close the monitor links, then leave the mesh."""
        await self._reports.close()
        await super().close()

    def _stats_fields(self) -> dict[str, Any]:
        return {**super()._stats_fields(), "monitors": self.monitors}

    def _foreign_node(self, event: str, node: Node) -> None:
        super()._foreign_node(event, node)
        self._reports.foreign_node(event, node)

    def _status_traffic(self) -> dict[str, dict[str, int]] | None:
        """Counts per linked peer for the status, or ``None`` for none (roles override it)."""
        return None

    # -- for roles ---------------------------------------------------------------

    def _on_frame(self, link: Link, args: list[Any]) -> None:
        """A frame arrived from a paired peer (``link.context`` is its :class:`Peer`)."""

    def _link_up(self, peer: Peer) -> None:
        """A link to a paired peer is up."""
        self._link_opened(peer.address, peer.linked > 1)

    def _link_down(self, peer: Peer, exc: Exception | None) -> None:
        """A link to a paired peer dropped."""
        self._link_closed(peer.address, exc)

    def _link_count(self) -> int:
        return self._links.connected

    def _status_nodes(self) -> list[str]:
        return [p.id for p in self._links.linked()]

    # -- discovery hooks -----------------------------------------------------------

    async def _bind(self) -> None:
        self._links.use_host_names = self._use_host_names()

    def _linked_to(self, node_id: str) -> bool:
        peer = self._links.peers.get(node_id)
        return peer is not None and peer.link is not None

    def _heard_from(self, node_id: str) -> float | None:
        peer = self._links.peers.get(node_id)
        return peer.link.heard_at if peer is not None and peer.link is not None else None

    def _node_added(self, node: Node) -> None:
        if not self._closing:
            self._links.add(node)

    def _node_updated(self, node: Node) -> None:
        if not self._closing:
            self._links.update(node)

    def _node_removed(self, node: Node) -> None:
        # Stop reconnecting; a live link is kept until it drops (transport/peers.py).
        self._links.remove(node.id)

    async def _shutdown(self) -> None:
        await self._links.close()

    # -- internals -------------------------------------------------------------------

    def _make_peers(
        self,
        label: str,
        *,
        on_frame: Callable[[Link, list[Any]], None] | None = None,
        on_up: Callable[[Peer], None] | None = None,
        on_down: Callable[[Peer, Exception | None], None] | None = None,
    ) -> Peers:
        """Outgoing links of one kind, wired to this component."""
        peers = Peers(
            on_frame=on_frame or _ignore,
            on_up=on_up,
            on_down=on_down,
            forget=self._forget,
            max_frame_size=self.max_frame_size,
            label=label,
            tls=self.tls,
            network=self.network,
        )
        peers.use_host_names = self._use_host_names()
        return peers

    def _use_host_names(self) -> bool:
        settings = self.discovery_settings
        return settings is not None and settings.use_host_names

    def _forget(self, node_id: str) -> None:
        """A node's port refuses connections: it is gone (it returns with its next hello)."""
        if self.discovery is not None:
            self.discovery.forget(node_id)


def _ignore(link: Link, args: list[Any]) -> None:
    """Frames on links that carry nothing this way (status links to monitors)."""
