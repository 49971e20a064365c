"""Requester: sends requests to matching responders and awaits the answers.

Design: discovery tells the requester which responders pair with it; for each
one it keeps a :class:`_Peer` that owns the TCP link and reconnects it while
the node is alive. Connected links become routes of a
:class:`~coterie.core.dispatch.Dispatcher`, which does all the routing,
waiting, failover and timeout work. This module is the asyncio glue.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from typing import Any

from coterie.components.monitorable import Monitorable
from coterie.core.auth import AuthError
from coterie.core.dispatch import Balance, Dispatcher, Pending, Route
from coterie.core.errors import FrameTooLargeError
from coterie.core.link import Link, connect
from coterie.discovery.table import Node
from coterie.wire.amp import encode_request_frame

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


class _Peer:
    """A paired responder: its node, its link while connected, reconnects."""

    __slots__ = ("connector", "link", "node", "removed", "route")

    def __init__(self, node: Node) -> None:
        self.node = node
        self.link: Link | None = None
        self.route: Route | None = None
        self.connector: asyncio.Task[None] | None = None
        self.removed = False


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
        self._peers: dict[str, _Peer] = {}
        self._link_change = asyncio.Event()
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
        return sum(1 for p in self._peers.values() if p.route is not None)

    async def wait_connected(self, count: int = 1, timeout: float = 10.0) -> None:
        """Wait until at least ``count`` responders are connected.

        Raises:
            TimeoutError: When they do not appear within ``timeout`` seconds.
        """
        async with asyncio.timeout(timeout):
            while self.connected < count:
                self._link_change.clear()
                await self._link_change.wait()

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
        frame = encode_request_frame(request, request_id)
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
        """Responders with a live link, for monitors' status reports."""
        return [p.node.id for p in self._peers.values() if p.link is not None]

    # -- discovery hooks ----------------------------------------------------------

    def _node_added(self, node: Node) -> None:
        if node.port is None or self._closing:
            return
        peer = self._peers.get(node.id)
        if peer is None:
            peer = self._peers[node.id] = _Peer(node)
        peer.node = node
        peer.removed = False
        self._ensure_connecting(peer)

    def _node_updated(self, node: Node) -> None:
        peer = self._peers.get(node.id)
        if peer is None:
            self._node_added(node)
            return
        peer.node = node
        if peer.route is not None:
            peer.route.node = node
            self._dispatcher.retry_waiting()

    def _node_removed(self, node: Node) -> None:
        peer = self._peers.get(node.id)
        if peer is None:
            return
        peer.removed = True
        if peer.connector is not None:
            peer.connector.cancel()
        if peer.route is not None:
            self._dispatcher.drain_route(peer.route)  # closes the link once drained
        else:
            self._peers.pop(node.id, None)

    # -- links --------------------------------------------------------------------

    def _ensure_connecting(self, peer: _Peer) -> None:
        if peer.link is not None or (peer.connector is not None and not peer.connector.done()):
            return
        peer.connector = asyncio.get_running_loop().create_task(
            self._connect(peer), name=f"coterie-connect-{peer.node.id[:8]}"
        )

    async def _connect(self, peer: _Peer) -> None:
        delay = 0.05
        assert self.settings is not None
        use_host_names = self.settings.use_host_names
        while not peer.removed and not self._closing:
            node = peer.node
            host, port = node.connect_host(use_host_names), node.port
            if port is None:
                return
            try:
                link = await connect(
                    host,
                    port,
                    self._on_frame,
                    self._on_link_closed,
                    max_frame_size=self.max_frame_size,
                    secret=self.secret,
                )
            except AuthError as exc:
                log.warning(
                    "%s at %s:%s failed the link handshake: %s",
                    node.advertisement.get("name"),
                    host,
                    port,
                    exc,
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
                continue
            except (OSError, TimeoutError) as exc:
                log.debug("connect to %s at %s:%s failed: %s", node.id, host, port, exc)
                if isinstance(exc, ConnectionRefusedError) and self.discovery is not None:
                    # Nothing listens there any more: the process is gone.
                    self.discovery.forget(node.id)
                    return
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
                continue
            if peer.removed or self._closing:
                link.close()
                return
            peer.link = link
            link.context = peer
            peer.route = Route(link, node)
            log.debug(
                "linked to %s %s at %s:%s", node.advertisement.get("name"), node.id, host, port
            )
            self._dispatcher.add_route(peer.route)
            self._link_change.set()
            return

    def _on_frame(self, link: Link, args: list[Any]) -> None:
        peer: _Peer | None = link.context
        if peer is not None and peer.route is not None:
            self._dispatcher.reply(peer.route, args)

    def _on_link_closed(self, link: Link, exc: Exception | None) -> None:
        peer: _Peer | None = link.context
        if peer is None or peer.link is not link:
            return
        route = peer.route
        peer.link = None
        peer.route = None
        if route is not None:
            self._dispatcher.remove_route(route)
        if peer.removed or self._closing:
            self._peers.pop(peer.node.id, None)
            return
        log.info(
            "link to %s lost (%s); reconnecting",
            peer.node.advertisement.get("name"),
            exc or "closed by peer",
        )
        self._ensure_connecting(peer)

    def _route_drained(self, route: Route) -> None:
        for peer in self._peers.values():
            if peer.route is route and peer.removed and peer.link is not None:
                peer.link.close()
                return

    async def _shutdown(self) -> None:
        for peer in self._peers.values():
            peer.removed = True
            if peer.connector is not None:
                peer.connector.cancel()
        self._dispatcher.close(RuntimeError(f"{self!r} closed before the request was answered"))
        connectors = [p.connector for p in self._peers.values() if p.connector is not None]
        for peer in list(self._peers.values()):
            if peer.link is not None:
                peer.link.close()
        for task in connectors:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._peers.clear()


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
