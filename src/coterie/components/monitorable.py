"""Status reports to monitors, as cote's Requesters and Subscribers send them.

Design: :class:`StatusReports` is a part that every connecting component
(:class:`~coterie.components.connecting.ConnectingComponent`: Requester,
Subscriber) holds, not a base class it inherits. Monitors never pair with
anything (they advertise ``type: "monitor"`` and no ``axon_type``), so they
arrive through the component's ``_foreign_node`` hook, which hands them to
:meth:`StatusReports.foreign_node`. For each monitor whose advertisement key is a prefix of this
component's key (cote's rule, so a monitor with the bare key ``"$$"`` sees
every component of its environment), a :class:`~coterie.transport.peers.Peers`
keeps an outgoing link, and every status interval this component sends
``["status", {"id": <own iid>, "nodes": [<linked peer iids>]}]``, framed like
a publish, on each of them (the message is :mod:`coterie.protocol.status`'s).
Monitors send nothing back.

Beyond cote, a requester's status also carries ``"traffic"``: for each
responder link, the requests sent on it and the error replies from it since
it came up (its router counts them, :meth:`Router.traffic
<coterie.protocol.routing.Router.traffic>`); a subscriber's, the events
received on each publisher link. cote's monitor passes the
status object on untouched and reads nothing but ``id``; a coterie monitor
turns two reports into rates per edge.

Beyond cote: a status also goes out as soon as a monitor link comes up, so a
new monitor shows the graph at once instead of after one interval; links to
monitors that leave are closed.

The interval is the ``status_interval`` argument in seconds, else
``COTE_STATUS_INTERVAL`` in milliseconds (a coterie variable; cote's
equivalent is its ``statusInterval`` discovery option), else 5 s.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Protocol

from coterie.protocol.nodes import Node
from coterie.protocol.pairing import reports_to
from coterie.protocol.status import TRAFFIC_FIELD, encode_status, status_report
from coterie.transport.peers import Peer, Peers
from coterie.transport.timer import Alarm

__all__ = ["DEFAULT_STATUS_INTERVAL", "TRAFFIC_FIELD", "Reporter", "StatusReports"]

log = logging.getLogger("coterie.monitorable")

#: Seconds between status reports, as in cote.
DEFAULT_STATUS_INTERVAL = 5.0


class Reporter(Protocol):
    """What :class:`StatusReports` asks of the component that holds it."""

    @property
    def id(self) -> str:
        """The component's instance id."""
        ...

    advertisement: dict[str, Any]
    _closing: bool

    @property
    def _make_peers(self) -> Callable[..., Peers]:
        """``ConnectingComponent._make_peers``: outgoing links of one kind."""
        ...

    def _link_opened(self, address: str, again: bool) -> None: ...

    def _link_closed(self, address: str, error: BaseException | None) -> None: ...

    def _status_nodes(self) -> list[str]: ...

    def _status_traffic(self) -> dict[str, dict[str, int]] | None: ...


class StatusReports:
    """The status reports of one connecting component to the monitors that want them.

    Args:
        owner: The component it reports for (its id, links and counts).
        interval: Seconds between reports (positive); see the module doc.
    """

    def __init__(self, owner: Reporter, interval: float) -> None:
        self._owner = owner
        self.status_interval = interval
        self._monitors: Peers | None = None
        self._status_alarm = Alarm(self._status_tick)
        self._reporting = True
        self.statuses_sent = 0

    @property
    def monitors(self) -> int:
        """How many monitors this component has a live status link to."""
        return self._monitors.connected if self._monitors is not None else 0

    # -- discovery -------------------------------------------------------------

    def foreign_node(self, event: str, node: Node) -> None:
        """A node that does not pair appeared, changed or left: a monitor, maybe."""
        if event == "removed":
            if self._monitors is not None:
                self._monitors.remove(node.id)
            return
        owner = self._owner
        if not self._reporting or owner._closing:
            return
        if not reports_to(owner.advertisement, node.advertisement):
            return
        if self._monitors is None:
            self._monitors = owner._make_peers(
                "monitor", on_up=self._monitor_linked, on_down=self._monitor_unlinked
            )
            self._status_alarm.after(self.status_interval)
        if event == "added":
            self._monitors.add(node)
        else:
            self._monitors.update(node)

    # -- status ------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """The status object the component reports (see its ``status()``)."""
        owner = self._owner
        return status_report(owner.id, owner._status_nodes(), owner._status_traffic())

    def _monitor_linked(self, peer: Peer) -> None:
        self._owner._link_opened(peer.address, peer.linked > 1)
        if peer.link is not None:
            peer.link.write(encode_status(self.status()))
            self.statuses_sent += 1

    def _monitor_unlinked(self, peer: Peer, exc: Exception | None) -> None:
        self._owner._link_closed(peer.address, exc)

    def _status_tick(self) -> None:
        if not self._reporting or self._owner._closing or self._monitors is None:
            return
        linked = self._monitors.linked()
        if linked:
            frame = encode_status(self.status())
            for peer in linked:
                if peer.link is not None:
                    peer.link.write(frame)
            self.statuses_sent += len(linked)
        self._status_alarm.after(self.status_interval)

    def start(self) -> None:
        """The component starts: reports begin when a monitor appears."""
        self._reporting = True

    async def close(self) -> None:
        """Stop reporting and close the monitor links."""
        self._reporting = False
        self._status_alarm.cancel()
        monitors, self._monitors = self._monitors, None
        if monitors is not None:
            await monitors.close()
