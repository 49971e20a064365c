"""Status reports to monitors, as cote's Requesters and Subscribers send them.

Design: :class:`Monitorable` is a mixin base for connecting roles. Monitors
never pair with anything (they advertise ``type: "monitor"`` and no
``axon_type``), so they arrive through the component's ``_foreign_node``
hook. For each monitor whose advertisement key is a prefix of this
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
from typing import Any, Self

from coterie.components.connecting import ConnectingComponent
from coterie.protocol.nodes import Node
from coterie.protocol.pairing import reports_to
from coterie.protocol.status import TRAFFIC_FIELD, encode_status, status_report
from coterie.transport.peers import Peer, Peers
from coterie.transport.timer import Alarm

__all__ = ["DEFAULT_STATUS_INTERVAL", "TRAFFIC_FIELD", "Monitorable"]

log = logging.getLogger("coterie.monitorable")

#: Seconds between status reports, as in cote.
DEFAULT_STATUS_INTERVAL = 5.0


class Monitorable(ConnectingComponent):
    """A connecting component that reports its links to monitors.

    Args:
        status_interval: Seconds between status reports; see the module doc.
        *args: Passed on to the next base.
        **kwargs: Passed on to the next base.
    """

    def __init__(self, *args: Any, status_interval: float | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if status_interval is None:
            status_interval = self.variables.status_interval or DEFAULT_STATUS_INTERVAL
        if not status_interval > 0:
            raise ValueError(f"status_interval must be positive seconds, got {status_interval!r}")
        self.status_interval = status_interval
        self._monitors: Peers | None = None
        self._status_alarm = Alarm(self._status_tick)
        self._reporting = True
        self.statuses_sent = 0

    @property
    def monitors(self) -> int:
        """How many monitors this component has a live status link to."""
        return self._monitors.connected if self._monitors is not None else 0

    def _stats_fields(self) -> dict[str, Any]:
        return {**super()._stats_fields(), "monitors": self.monitors}

    # -- discovery -------------------------------------------------------------

    def _foreign_node(self, event: str, node: Node) -> None:
        super()._foreign_node(event, node)
        if event == "removed":
            if self._monitors is not None:
                self._monitors.remove(node.id)
            return
        if not self._reporting or self._closing:
            return
        if not reports_to(self.advertisement, node.advertisement):
            return
        if self._monitors is None:
            self._monitors = self._make_peers(
                "monitor", on_up=self._monitor_linked, on_down=self._monitor_unlinked
            )
            self._status_alarm.after(self.status_interval)
        if event == "added":
            self._monitors.add(node)
        else:
            self._monitors.update(node)

    # -- status ------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """The status object this component reports.

        A requester adds ``"traffic": {<responder iid>: {"requests": n,
        "errors": n}}`` and a subscriber ``{<publisher iid>: {"events": n}}``,
        counted since each link came up; cote's monitor ignores the field.
        """
        return status_report(self.id, self._status_nodes(), self._status_traffic())

    def _status_traffic(self) -> dict[str, dict[str, int]] | None:
        """Counts per linked peer for the status, or ``None`` for none (roles override it)."""
        return None

    def _monitor_linked(self, peer: Peer) -> None:
        self._link_opened(peer.address, peer.linked > 1)
        if peer.link is not None:
            peer.link.write(encode_status(self.status()))
            self.statuses_sent += 1

    def _monitor_unlinked(self, peer: Peer, exc: Exception | None) -> None:
        self._link_closed(peer.address, exc)

    def _status_tick(self) -> None:
        if not self._reporting or self._closing or self._monitors is None:
            return
        linked = self._monitors.linked()
        if linked:
            frame = encode_status(self.status())
            for peer in linked:
                if peer.link is not None:
                    peer.link.write(frame)
            self.statuses_sent += len(linked)
        self._status_alarm.after(self.status_interval)

    async def start(self) -> Self:
        """Start the component; status reports begin when a monitor appears."""
        self._reporting = True
        return await super().start()

    async def close(self) -> None:
        """Stop reporting, close the monitor links, then leave the mesh."""
        self._reporting = False
        self._status_alarm.cancel()
        monitors, self._monitors = self._monitors, None
        if monitors is not None:
            await monitors.close()
        await super().close()
