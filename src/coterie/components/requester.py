"""Requester: sends requests to matching responders and awaits the answers.

Design: discovery tells the requester which responders pair with it; a
:class:`~coterie.core.peerlinks.PeerLinks` keeps one TCP link to each and
reconnects it while the node is alive. Every live link is a route of a
:class:`~coterie.core.dispatch.Dispatcher`, which does all the routing,
waiting, failover and timeout work. This module is the asyncio glue.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

from coterie.components.monitorable import Monitorable
from coterie.core.dispatch import Balance, Dispatcher, Pending, Route
from coterie.core.errors import FrameTooLargeError
from coterie.core.link import Link
from coterie.core.peerlinks import PeerLink, PeerLinks
from coterie.discovery.table import Node
from coterie.wire.axon import encode_request

__all__ = [
    "DEFAULT_REQUEST_TIMEOUT",
    "PendingBalancedRequester",
    "Requester",
    "TimeBalancedRequester",
]

log = logging.getLogger("coterie.requester")

#: Seconds a request may take, waiting included, when nothing else is set.
DEFAULT_REQUEST_TIMEOUT = 60.0

_UNSET: Any = object()
_SUBSET = "__subset"
_TIMEOUT = "__timeout"


def _env_timeout() -> float | None:
    raw = os.environ.get("COTE_REQUEST_TIMEOUT")
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"COTE_REQUEST_TIMEOUT must be milliseconds, got {raw!r}") from None
    if value <= 0:
        raise ValueError(f"COTE_REQUEST_TIMEOUT must be positive, got {raw!r}")
    return value / 1000


class Requester(Monitorable):
    """Sends requests; round robin over responders by default.

    Args:
        name: Name shown to peers.
        timeout: Default bound in seconds for each request, waiting for a
            responder included; ``None`` waits forever. Defaults to
            ``COTE_REQUEST_TIMEOUT`` (ms) or :data:`DEFAULT_REQUEST_TIMEOUT`.
        balance: ``"round_robin"``, ``"pending"`` or ``"time"``.
        max_waiting: Most requests that may wait for a responder at once.
        backlog_settle: Seconds to gather responders before spreading a
            backlog that waited for the first one.
        requests: Request types this requester sends, advertised as
            ``requests`` for monitors.
        status_interval: Seconds between status reports to monitors (see
            :mod:`coterie.components.monitorable`).
        **kwargs: See :class:`~coterie.components.base.Component`.
    """

    role = "req"
    opposite = "rep"

    def __init__(
        self,
        name: str | None = None,
        *,
        timeout: float | None = _UNSET,
        balance: Balance = "round_robin",
        max_waiting: int = 10_000,
        backlog_settle: float = 0.05,
        requests: list[str] | None = None,
        **kwargs: Any,
    ) -> None:
        extra = dict(kwargs.pop("advertisement", None) or {})
        if requests is not None:
            extra["requests"] = list(requests)
        super().__init__(name, advertisement=extra, **kwargs)
        if timeout is _UNSET:
            env = _env_timeout()
            timeout = env if env is not None else DEFAULT_REQUEST_TIMEOUT
        if timeout is not None and timeout <= 0:
            raise ValueError(f"timeout must be positive seconds or None, got {timeout!r}")
        self.timeout: float | None = timeout
        self._dispatcher = Dispatcher(
            balance=balance,
            max_waiting=max_waiting,
            settle=backlog_settle,
            on_drained=self._route_drained,
        )
        self._routes: dict[str, Route] = {}
        self._links = PeerLinks(
            on_frame=self._on_frame,
            on_up=self._link_up,
            on_down=self._link_down,
            max_frame_size=self.max_frame_size,
            label="responder",
            secret=self.secret,
        )
        self._ids = 0
        self._id_prefix = str(os.getpid())

    # -- public ----------------------------------------------------------------

    @property
    def dispatcher(self) -> Dispatcher:
        """The routing state (routes, waiting queue, counters)."""
        return self._dispatcher

    @property
    def connected(self) -> int:
        """How many responders have a live link."""
        return self._links.connected

    async def wait_connected(self, count: int = 1, timeout: float = 10.0) -> None:
        """Wait until at least ``count`` responders are connected.

        Raises:
            TimeoutError: When they do not appear within ``timeout`` seconds.
        """
        await self._links.wait_linked(count, timeout)

    async def send(
        self, request: dict[str, Any], *, timeout: float | None = _UNSET, retry: bool = True
    ) -> Any:
        """Send a request and return the responder's result.

        Args:
            request: A JSON-serialisable dict with a ``type``. ``__subset``
                routes to responders advertising that subset; ``__timeout``
                (ms) is cote's per-request bound.
            timeout: Seconds for this request, waiting included; defaults to
                ``__timeout`` or the requester's ``timeout``.
            retry: Resend to another responder if the link carrying it is
                lost (default). ``False`` for work that must not run twice: it
                then fails fast with :class:`~coterie.LinkLostError`.

        Raises:
            RemoteError: The handler failed; carries its message.
            RequestTimeoutError: No answer within the bound (a ``TimeoutError``).
            LinkLostError: ``retry=False`` and the link was lost mid-flight.
            QueueFullError: Too many requests are already waiting.
            FrameTooLargeError: The request exceeds ``max_frame_size``.
            TypeError, ValueError: The request is not a dict with a type.
            RuntimeError: The requester is not started or is closing.
        """
        if not self._started or self._closing:
            raise RuntimeError(f"{self!r} is not running: use 'async with' or await start()")
        if not isinstance(request, dict):
            raise TypeError(f"a request must be a dict, got {type(request).__name__}")
        if "type" not in request:
            raise ValueError("a request needs a 'type' field")
        subset = None
        if _SUBSET in request:
            request = dict(request)
            subset = request.pop(_SUBSET)
        if timeout is _UNSET:
            wire_timeout = request.get(_TIMEOUT)
            if isinstance(wire_timeout, int | float) and wire_timeout > 0:
                timeout = wire_timeout / 1000
            else:
                timeout = self.timeout
        self._ids += 1
        request_id = f"{self._id_prefix}:{self._ids}"
        frame = encode_request(request, request_id)
        if len(frame) > self.max_frame_size:
            raise FrameTooLargeError(
                f"request of {len(frame)} bytes exceeds max_frame_size={self.max_frame_size}"
            )
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        pending = Pending(request_id, frame, request["type"], future, subset=subset, retry=retry)
        self._dispatcher.submit(pending, timeout)
        try:
            return await future
        except asyncio.CancelledError:
            self._dispatcher.cancel(pending)
            raise

    def _status_nodes(self) -> list[str]:
        """Responders this requester has a live link to (for monitors)."""
        return [p.id for p in self._links.linked()]

    # -- discovery hooks ----------------------------------------------------------

    async def _bind(self) -> None:
        assert self.settings is not None
        self._links.use_host_names = self.settings.use_host_names
        self._links.forget = self._forget

    def _forget(self, node_id: str) -> None:
        if self.discovery is not None:
            self.discovery.forget(node_id)

    def _node_added(self, node: Node) -> None:
        if not self._closing:
            self._links.add(node)
            route = self._routes.get(node.id)
            if route is not None and route.draining:
                route.draining = False  # it came back before its link dropped
                self._dispatcher.retry_waiting()

    def _node_updated(self, node: Node) -> None:
        self._links.update(node)
        route = self._routes.get(node.id)
        if route is not None:
            route.node = node
            self._dispatcher.retry_waiting()

    def _node_removed(self, node: Node) -> None:
        # Stop reconnecting; send nothing new; close once its replies are in.
        self._links.remove(node.id)
        route = self._routes.get(node.id)
        if route is not None:
            self._dispatcher.drain_route(route)

    # -- links --------------------------------------------------------------------

    def _link_up(self, peer: PeerLink) -> None:
        assert peer.link is not None
        route = Route(peer.link, peer.node)
        self._routes[peer.id] = route
        self._dispatcher.add_route(route)

    def _link_down(self, peer: PeerLink, exc: Exception | None) -> None:
        route = self._routes.pop(peer.id, None)
        if route is not None:
            self._dispatcher.remove_route(route)

    def _on_frame(self, link: Link, args: list[Any]) -> None:
        peer: PeerLink | None = link.context
        route = self._routes.get(peer.id) if peer is not None else None
        if route is not None and route.writer is link:
            self._dispatcher.reply(route, args)

    def _route_drained(self, route: Route) -> None:
        for node_id, candidate in self._routes.items():
            if candidate is route:
                peer = self._links.peers.get(node_id)
                if peer is not None and peer.removed and peer.link is not None:
                    peer.link.close()
                return

    async def _shutdown(self) -> None:
        self._dispatcher.close(RuntimeError(f"{self!r} closed before the request was answered"))
        await self._links.close()
        self._routes.clear()


class PendingBalancedRequester(Requester):
    """A requester that sends each request to the responder with fewest in flight."""

    def __init__(self, name: str | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("balance", "pending")
        super().__init__(name, **kwargs)


class TimeBalancedRequester(Requester):
    """A requester that favours the responder with the fastest recent replies."""

    def __init__(self, name: str | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("balance", "time")
        super().__init__(name, **kwargs)
