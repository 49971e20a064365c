"""The listening roles' base: a TCP port peers open links to, with bounds on what it admits.

Design: Responders, Publishers and Monitors *accept* links. What they share
is here, once: :class:`ListeningComponent` binds before the component
announces itself (so its port is in its first hello), keeps the links peers
opened to it, and bounds them. Who is let in, who is evicted, which TLS
handshake may start, and which silent link is closed are rules of
:mod:`coterie.protocol.admission`; this module carries them out (aborts,
starts handshakes, logs refusals a few a second at most). A role overrides
:meth:`ListeningComponent._on_frame` and calls :meth:`ListeningComponent._prove`
for a link that did real work.
"""

from __future__ import annotations

import asyncio
import logging
import warnings
from collections.abc import Callable
from typing import Any

from coterie._logbudget import LogBudget
from coterie.components.base import Component
from coterie.observe import ListenerStats
from coterie.protocol.admission import Admission, idle
from coterie.transport.link import Budget, Link, serve
from coterie.transport.network import Listener
from coterie.transport.timer import Alarm

__all__ = [
    "DEFAULT_IDLE_TIMEOUT",
    "DEFAULT_MAX_BUFFERED",
    "DEFAULT_MAX_CONNECTIONS",
    "ListeningComponent",
]

log = logging.getLogger("coterie")


#: Defaults of :class:`ListeningComponent`'s bounds.
DEFAULT_MAX_CONNECTIONS = 1024
DEFAULT_MAX_BUFFERED = 64 * 1024 * 1024
DEFAULT_IDLE_TIMEOUT = 30.0
#: A source's share of ``max_connections`` unless ``max_per_source`` is set.
DEFAULT_SOURCE_SHARE = 4


class ListeningComponent(Component):
    """A component that listens on TCP: Responder, Publisher, Monitor.

    It binds before it announces itself, so its port is in its first hello,
    and keeps the set of links peers opened to it.

    Every peer may be hostile, so what it accepts is bounded
    (:mod:`coterie.protocol.admission`): at most ``max_connections`` links
    at once, connections still in their TLS handshake included, and at most
    ``max_per_source`` from one address; at the cap, the oldest link that
    has not proven itself (no request served yet, no status report from a
    known node) is closed to make room. At most ``max_buffered`` bytes of
    partial input across all links, and a link that sends no frame within
    ``idle_timeout`` seconds of connecting is closed. Refusals are logged as
    warnings naming the peer, a few a second at most.

    Args:
        name: Name shown to peers.
        host: Address to listen on.
        port: TCP port; 0 picks a free one.
        max_connections: Most inbound links at once (default 1024).
        max_per_source: Most of them from one address (default a quarter
            of ``max_connections``).
        max_buffered: Most bytes of incoming data held across all links
            (default 64 MiB).
        idle_timeout: Seconds a new link may stay silent before it sends its
            first frame (default 30; coterie requesters ping at once, Node
            requesters reconnect when they have work); ``None`` for no limit
            (a Publisher's subscribers never send anything, so its links
            are never evicted for another's sake either).
        **kwargs: See :class:`~coterie.components.base.Component`.
    """

    _listens = True

    def __init__(
        self,
        name: str | None = None,
        *,
        host: str = "0.0.0.0",
        port: int = 0,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        max_per_source: int | None = None,
        max_buffered: int = DEFAULT_MAX_BUFFERED,
        idle_timeout: float | None = DEFAULT_IDLE_TIMEOUT,
        **kwargs: Any,
    ) -> None:
        super().__init__(name, **kwargs)
        if max_connections < 1:
            raise ValueError(f"max_connections must be at least 1, got {max_connections}")
        if max_per_source is None:
            max_per_source = max(1, max_connections // DEFAULT_SOURCE_SHARE)
        if not 1 <= max_per_source <= max_connections:
            raise ValueError(
                f"max_per_source must be 1 to max_connections ({max_connections}), "
                f"got {max_per_source}"
            )
        if idle_timeout is not None and not idle_timeout > 0:
            raise ValueError(f"idle_timeout must be positive seconds, got {idle_timeout!r}")
        self.host = host
        self.port = port
        self.max_connections = max_connections
        self.max_per_source = max_per_source
        self.idle_timeout = idle_timeout
        self._budget = Budget(max_buffered)
        #: Who holds a place under the link cap (links, and TLS connections
        #: before their handshake).
        self._admission: Admission[Link] = Admission(
            max_connections, max_per_source, evict=idle_timeout is not None
        )
        #: Links closed for staying silent.
        self.idle_closed = 0
        self._idle_alarm = Alarm(self._idle_check)
        self._refusals = LogBudget(log)
        self._server: Listener | None = None
        self._accepted: set[Link] = set()
        #: Start callbacks of TLS connections waiting for their handshake.
        self._starters: dict[Link, Callable[[], None]] = {}

    @property
    def refused_connections(self) -> int:
        """Connections refused: their source held its share, or every link was proven."""
        return self._admission.refused_share + self._admission.refused_full

    @property
    def evicted_connections(self) -> int:
        """Unproven connections closed to make room for a newcomer."""
        return self._admission.evicted

    def stats(self) -> ListenerStats:
        """What this component holds now (see :meth:`~coterie.components.base.Component.stats`)."""
        return ListenerStats(**self._listener_fields())

    def _listener_fields(self) -> dict[str, Any]:
        return {
            **self._stats_fields(),
            "refused_connections": self.refused_connections,
            "idle_closed": self.idle_closed,
        }

    def _link_count(self) -> int:
        return len(self._accepted)

    @property
    def links(self) -> frozenset[Link]:
        """The links peers have open to this component now (a snapshot).

        For inspection: how many peers are connected, whether a link was
        replaced. Closing or aborting one drops that peer's connection.
        """
        return frozenset(self._accepted)

    # -- deprecated: internal types, once public ----------------------------------------

    @property
    def admission(self) -> Admission[Link]:
        """Deprecated: internal; read ``refused_connections`` or ``evicted_connections``."""
        _deprecated("admission", "refused_connections, evicted_connections or stats()")
        return self._admission

    @property
    def budget(self) -> Budget:
        """Deprecated: internal (the buffered-input bound is ``max_buffered``)."""
        _deprecated("budget", "the max_buffered argument")
        return self._budget

    def arrived(
        self, protocol: asyncio.Protocol, address: object, start: Callable[[], None]
    ) -> bool:
        """Deprecated: internal (the listener's handshake gate)."""
        _deprecated("arrived()", "nothing: the listener calls its gate itself")
        return self._arrived(protocol, address, start)

    def want_handshake(self, protocol: asyncio.Protocol) -> bool:
        """Deprecated: internal (the listener's handshake gate)."""
        _deprecated("want_handshake()", "nothing: the listener calls its gate itself")
        return self._want_handshake(protocol)

    def handshake_over(self, protocol: asyncio.Protocol, ok: bool) -> None:
        """Deprecated: internal (the listener's handshake gate)."""
        _deprecated("handshake_over()", "nothing: the listener calls its gate itself")
        self._handshake_over(protocol, ok)

    async def _bind(self) -> None:
        self._server = await serve(
            self.host,
            self.port,
            self._on_frame,
            self._on_link_closed,
            self._on_link_open,
            max_frame_size=self.max_frame_size,
            tls=self.tls,
            network=self.network,
            budget=self._budget,
            gate=_Gate(self),
        )
        self.port = self._server.port
        self.advertisement["port"] = self.port

    async def _unbind(self) -> None:
        self._idle_alarm.cancel()
        for link in list(self._accepted):
            link.abort()
        self._accepted.clear()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    def _on_frame(self, link: Link, args: list[Any]) -> None:
        """A frame arrived on one of the accepted links."""

    # -- admission (coterie.protocol.admission) --------------------------------------

    def _admit(self, link: Link) -> bool:
        verdict = self._admission.arrive(link, link.source)
        if not verdict.admitted:
            if verdict.reason == "share":
                self._refusals.warning(
                    "%s refused a link from %s: %s holds %d links, max_per_source is %d",
                    self.name,
                    link.peer,
                    link.source,
                    self._admission.held_by(link.source),
                    self.max_per_source,
                )
            else:
                self._refusals.warning(
                    "%s refused a link from %s: %d links open, all proven, max_connections is %d",
                    self.name,
                    link.peer,
                    len(self._admission),
                    self.max_connections,
                )
            link.abort()
            return False
        evicted = verdict.evict
        if evicted is not None:
            self._refusals.warning(
                "%s closed a link from %s that had served nothing, to make room for %s "
                "(max_connections is %d)",
                self.name,
                evicted.peer,
                link.peer,
                self.max_connections,
            )
            evicted.abort()
        return True

    def _prove(self, link: Link) -> None:
        """``link`` did real work: it is not evicted to make room for others."""
        link.proven = True
        self._admission.prove(link)

    # -- the handshake gate (coterie.transport.network.HandshakeGate, through _Gate) --

    def _arrived(
        self, protocol: asyncio.Protocol, address: object, start: Callable[[], None]
    ) -> bool:
        """A TLS connection arrived (:class:`~coterie.transport.network.HandshakeGate`)."""
        assert isinstance(protocol, Link)
        protocol.named(address)
        self._starters[protocol] = start
        if self._admit(protocol):
            return True
        del self._starters[protocol]
        return False

    def _want_handshake(self, protocol: asyncio.Protocol) -> bool:
        """Its first bytes arrived: may its handshake start now?"""
        assert isinstance(protocol, Link)
        return self._admission.want_handshake(protocol)

    def _handshake_over(self, protocol: asyncio.Protocol, ok: bool) -> None:
        """Its handshake ended; start waiting ones in its place."""
        assert isinstance(protocol, Link)
        self._starters.pop(protocol, None)
        self._start_handshakes(self._admission.handshake_over(protocol))
        if not ok:
            self._start_handshakes(self._admission.leave(protocol))

    def _start_handshakes(self, links: list[Link]) -> None:
        for link in links:
            start = self._starters.get(link)
            if start is not None:
                start()

    # -- links ---------------------------------------------------------------------------

    def _on_link_open(self, link: Link) -> None:
        if link not in self._admission and not self._admit(link):
            return
        self._accepted.add(link)
        if not self._idle_alarm.armed and self.idle_timeout is not None:
            self._idle_alarm.after(self.idle_timeout / 4)
        self._link_opened(link.peer, False)

    def _idle_check(self) -> None:
        """Close links that never sent a frame within ``idle_timeout`` (the rule: ``idle``)."""
        if self.idle_timeout is None:
            return
        now = asyncio.get_running_loop().time()
        silent, again = idle(self._accepted, now, self.idle_timeout)
        for link in silent:
            self.idle_closed += 1
            self._refusals.warning(
                "%s closed a link from %s: no frame in %.3g s",
                self.name,
                link.peer,
                self.idle_timeout,
            )
            link.abort()
        if again is not None:
            self._idle_alarm.after(again)

    def _on_link_closed(self, link: Link, exc: Exception | None) -> None:
        self._start_handshakes(self._admission.leave(link))
        if link not in self._accepted:
            return  # refused or evicted before it opened: never counted
        self._accepted.discard(link)
        self._link_closed(link.peer, exc)


class _Gate:
    """The listener's handshake gate (:class:`~coterie.transport.network.HandshakeGate`).

    A private object, so the component's public surface does not carry the
    gate's methods and their transport types.
    """

    __slots__ = ("_owner",)

    def __init__(self, owner: ListeningComponent) -> None:
        self._owner = owner

    def arrived(
        self, protocol: asyncio.Protocol, address: object, start: Callable[[], None]
    ) -> bool:
        return self._owner._arrived(protocol, address, start)

    def want_handshake(self, protocol: asyncio.Protocol) -> bool:
        return self._owner._want_handshake(protocol)

    def handshake_over(self, protocol: asyncio.Protocol, ok: bool) -> None:
        self._owner._handshake_over(protocol, ok)


def _deprecated(name: str, instead: str) -> None:
    warnings.warn(
        f"{name} of a responder, publisher or monitor is internal and will be removed; "
        f"use {instead}",
        DeprecationWarning,
        stacklevel=3,
    )
