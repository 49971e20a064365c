"""Request routing for requesters: balancing, waiting, failover, bounds.

Design: :class:`Dispatcher` owns every request from ``send`` to its one
answer. It knows routes (one per connected responder, anything with a
``write(bytes)``) and never touches a socket, so its rules are unit tested
with fake routes:

- a request goes to a route whose responder serves its type (``respondsTo``)
  and ``__subset``; among those, by the balancing policy (round robin,
  fewest pending, or fastest recent replies);
- with no such route it waits in a bounded queue; when routes appear after a
  time with none, the backlog is spread over every route that turned up within
  a short settle window, not poured onto the first;
- each request has a deadline; past it the caller gets
  :class:`~coterie.core.errors.RequestTimeoutError` and the request is
  withdrawn wherever it is;
- when a route is lost, its requests in flight are sent again elsewhere (or
  wait), unless marked ``retry=False``, which fails them fast with
  :class:`~coterie.core.errors.LinkLostError`;
- a reply is matched only on the route that carries its request, and only
  once, so a late duplicate is dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Literal, Protocol

from coterie.core.advertisement import serves
from coterie.core.errors import LinkLostError, QueueFullError, RemoteError, RequestTimeoutError

__all__ = ["Balance", "Dispatcher", "Pending", "Route", "RouteWriter"]

log = logging.getLogger("coterie.requester")

Balance = Literal["round_robin", "pending", "time"]

#: Time-balanced routing: reply times older than this many seconds are forgotten,
#: and every Nth request goes to a random route to keep measuring the others.
_TIME_WINDOW = 10.0
_TIME_EXPLORE_EVERY = 10


class RouteWriter(Protocol):
    """What a route writes to: a link."""

    def write(self, frame: bytes) -> None:
        """Send one frame."""


class Advertiser(Protocol):
    """What a route reads the responder's current advertisement from: a node."""

    advertisement: dict[str, Any]


class Route:
    """One connected responder.

    Attributes:
        writer: The link to write requests to.
        node: The responder's node; its advertisement is read live.
        inflight: Requests sent on this route and not yet answered.
        draining: The responder is leaving: no new requests go here.
    """

    __slots__ = ("draining", "inflight", "name", "node", "samples", "writer")

    def __init__(self, writer: RouteWriter, node: Advertiser, name: str = "") -> None:
        self.writer = writer
        self.node = node
        self.name = name or str(node.advertisement.get("name", "?"))
        self.inflight: dict[Any, Pending] = {}
        self.draining = False
        self.samples: deque[tuple[float, float]] = deque(maxlen=64)

    def takes(self, pending: Pending) -> bool:
        """Whether this route may carry the request."""
        if self.draining:
            return False
        adv = self.node.advertisement
        if pending.subset is not None and adv.get("subset") != pending.subset:
            return False
        return serves(adv, pending.type)

    def average(self, now: float) -> float:
        """Mean reply time over the recent window (0 with no samples)."""
        recent = [t for at, t in self.samples if now - at <= _TIME_WINDOW]
        return sum(recent) / len(recent) if recent else 0.0


class Pending:
    """One request between ``send`` and its answer."""

    __slots__ = (
        "deadline",
        "frame",
        "future",
        "id",
        "retry",
        "route",
        "sent_at",
        "subset",
        "type",
    )

    def __init__(
        self,
        request_id: str,
        frame: bytes,
        request_type: Any,
        future: asyncio.Future[Any],
        *,
        subset: Any = None,
        retry: bool = True,
    ) -> None:
        self.id = request_id
        self.frame = frame
        self.type = request_type
        self.future = future
        self.subset = subset
        self.retry = retry
        self.route: Route | None = None
        self.sent_at = 0.0
        self.deadline = 0.0


class Dispatcher:
    """Routes requests over the routes it is given.

    Args:
        balance: ``"round_robin"`` (cote's Requester), ``"pending"`` (fewest
            requests in flight, cote's PendingBalancedRequester) or ``"time"``
            (fastest recent replies, cote's TimeBalancedRequester).
        max_waiting: Most requests that may wait for a responder at once.
        settle: Seconds to gather routes before a backlog is spread.
        clock: Monotonic clock, seconds.
        on_drained: Called with a draining route once its last request is
            answered, so its owner can close the link.
    """

    def __init__(
        self,
        *,
        balance: Balance = "round_robin",
        max_waiting: int = 10_000,
        settle: float = 0.05,
        clock: Callable[[], float] = time.monotonic,
        on_drained: Callable[[Route], None] | None = None,
    ) -> None:
        self._on_drained = on_drained
        if balance not in ("round_robin", "pending", "time"):
            raise ValueError(f"unknown balance policy {balance!r}")
        self.balance = balance
        self.max_waiting = max_waiting
        self.settle = settle
        self.routes: list[Route] = []
        self.waiting: deque[Pending] = deque()
        self._clock = clock
        self._turn = 0
        self._sent = 0
        self._drain_handle: asyncio.TimerHandle | None = None
        self._deadlines: dict[float, deque[Pending]] = {}
        self._sweep_handle: asyncio.TimerHandle | None = None
        self._sweep_at = math.inf
        self.retried = 0
        self.late_replies = 0

    # -- requests ------------------------------------------------------------

    def submit(self, pending: Pending, timeout: float | None) -> None:
        """Route a request now, or queue it until a responder can take it.

        Raises:
            QueueFullError: When it would have to wait and the queue is full.
        """
        route = None if self._drain_handle is not None else self._pick(pending)
        if route is None and len(self.waiting) >= self.max_waiting:
            raise QueueFullError(
                f"{len(self.waiting)} requests already wait for a responder "
                f"(max_waiting={self.max_waiting})"
            )
        if timeout is not None:
            self._track_deadline(pending, timeout)
        if route is not None:
            self._send(route, pending)
            return
        self.waiting.append(pending)

    def reply(self, route: Route, args: list[Any]) -> None:
        """Deliver a reply frame ``[error, result..., id]`` that came on ``route``."""
        if len(args) < 2:
            log.debug("dropped reply of %d arguments from %s", len(args), route.name)
            return
        pending = route.inflight.pop(args[-1], None)
        if pending is None:
            self.late_replies += 1
            log.debug("dropped reply for unknown or answered request %r", args[-1])
            return
        if self.balance == "time":
            now = self._clock()
            route.samples.append((now, now - pending.sent_at))
        future = pending.future
        if not future.done():
            error = args[0]
            # JavaScript truthiness, as cote's requester: a thrown Error arrives
            # as {} and is still an error.
            if error is not None and error is not False and error != 0 and error != "":
                future.set_exception(RemoteError(error))
            else:
                future.set_result(args[1] if len(args) > 2 else None)
        if route.draining and not route.inflight:
            self._drained(route)

    def cancel(self, pending: Pending) -> None:
        """Withdraw a request whose caller gave up."""
        self._withdraw(pending)

    # -- routes --------------------------------------------------------------

    def add_route(self, route: Route) -> None:
        """A responder is connected; send it waiting work."""
        had_routes = any(not r.draining for r in self.routes)
        self.routes.append(route)
        if not self.waiting or self._drain_handle is not None:
            return  # nothing to send, or a settle window is gathering routes
        if had_routes or self.settle <= 0 or len(self.waiting) == 1:
            self._drain()
        elif self._drain_handle is None:
            # The first responder after none: it takes the oldest request at
            # once; the rest wait a moment so responders arriving together
            # share the backlog.
            head = self.waiting.popleft()
            if route.takes(head) and not head.future.done():
                self._send(route, head)
            else:
                self.waiting.appendleft(head)
            if self.waiting:
                loop = self.waiting[0].future.get_loop()
                self._drain_handle = loop.call_later(self.settle, self._settled)

    def drain_route(self, route: Route) -> None:
        """The responder is leaving: send it nothing new, keep its replies coming."""
        route.draining = True
        if not route.inflight:
            self._drained(route)

    def remove_route(self, route: Route) -> None:
        """The link is gone: resend or fail its requests in flight."""
        if route in self.routes:
            self.routes.remove(route)
        lost = list(route.inflight.values())
        route.inflight.clear()
        if not lost:
            return
        resend: list[Pending] = []
        for pending in lost:
            pending.route = None
            if pending.future.done():
                continue
            if pending.retry:
                resend.append(pending)
            else:
                pending.future.set_exception(
                    LinkLostError(
                        f"link to {route.name} was lost with request {pending.id} in flight; "
                        "not resent because retry=False"
                    )
                )
        if resend:
            self.retried += len(resend)
            log.info("resending %d request(s) lost with %s", len(resend), route.name)
            self.waiting.extendleft(reversed(resend))
            if self._drain_handle is None:
                self._drain()

    def close(self, exc: BaseException) -> None:
        """Fail everything still pending, e.g. when the requester closes."""
        if self._drain_handle is not None:
            self._drain_handle.cancel()
            self._drain_handle = None
        everything = list(self.waiting)
        self.waiting.clear()
        for route in self.routes:
            everything.extend(route.inflight.values())
            route.inflight.clear()
        if self._sweep_handle is not None:
            self._sweep_handle.cancel()
            self._sweep_handle = None
        self._deadlines.clear()
        for pending in everything:
            if not pending.future.done():
                pending.future.set_exception(exc)

    @property
    def inflight(self) -> int:
        """Requests sent and not yet answered."""
        return sum(len(r.inflight) for r in self.routes)

    # -- internals -------------------------------------------------------------

    def _drained(self, route: Route) -> None:
        if self._on_drained is not None:
            self._on_drained(route)

    def retry_waiting(self) -> None:
        """Try the waiting requests again, e.g. after a responder's types changed."""
        if self._drain_handle is None:
            self._drain()

    def _settled(self) -> None:
        self._drain_handle = None
        self._drain()

    def _drain(self) -> None:
        if not self.waiting:
            return
        still: deque[Pending] = deque()
        while self.waiting:
            pending = self.waiting.popleft()
            if pending.future.done():
                continue
            route = self._pick(pending)
            if route is None:
                still.append(pending)
            else:
                self._send(route, pending)
        self.waiting = still

    def _pick(self, pending: Pending) -> Route | None:
        routes = self.routes
        if not routes:
            return None
        if len(routes) == 1:
            only = routes[0]
            return only if only.takes(pending) else None
        candidates = [r for r in routes if r.takes(pending)]
        if not candidates:
            return None
        if self.balance == "pending":
            return min(candidates, key=lambda r: len(r.inflight))
        if self.balance == "time":
            self._sent += 1
            if self._sent % _TIME_EXPLORE_EVERY == 0:
                return random.choice(candidates)
            untried = [r for r in candidates if not r.samples]
            if untried:
                return untried[0]
            now = self._clock()
            return min(candidates, key=lambda r: r.average(now))
        self._turn += 1
        return candidates[self._turn % len(candidates)]

    def _send(self, route: Route, pending: Pending) -> None:
        pending.route = route
        if self.balance == "time":  # only time balancing reads reply times
            pending.sent_at = self._clock()
        route.inflight[pending.id] = pending
        route.writer.write(pending.frame)

    def _track_deadline(self, pending: Pending, timeout: float) -> None:
        # One FIFO per timeout value: equal timeouts expire in submission
        # order, so one timer for the earliest head replaces a timer per request.
        pending.deadline = self._clock() + timeout
        queue = self._deadlines.get(timeout)
        if queue is None:
            queue = self._deadlines[timeout] = deque()
        else:
            while queue and queue[0].future.done():
                queue.popleft()
        queue.append(pending)
        if self._sweep_handle is None or pending.deadline < self._sweep_at:
            self._arm(pending.future.get_loop(), pending.deadline)

    def _arm(self, loop: asyncio.AbstractEventLoop, at: float) -> None:
        if self._sweep_handle is not None:
            self._sweep_handle.cancel()
        self._sweep_at = at
        self._sweep_handle = loop.call_later(max(0.0, at - self._clock()), self._sweep, loop)

    def _sweep(self, loop: asyncio.AbstractEventLoop) -> None:
        self._sweep_handle = None
        now = self._clock()
        earliest = math.inf
        for timeout, queue in list(self._deadlines.items()):
            while queue:
                head = queue[0]
                if head.future.done():
                    queue.popleft()
                elif head.deadline <= now:
                    queue.popleft()
                    self._expire(head)
                else:
                    earliest = min(earliest, head.deadline)
                    break
            if not queue:
                del self._deadlines[timeout]
        if earliest < math.inf:
            self._arm(loop, earliest)

    def _expire(self, pending: Pending) -> None:
        if pending.future.done():
            return
        where = f"in flight to {pending.route.name}" if pending.route else "waiting for a responder"
        self._withdraw(pending)
        pending.future.set_exception(
            RequestTimeoutError(f"request {pending.id} ({pending.type!r}) timed out {where}")
        )

    def _withdraw(self, pending: Pending) -> None:
        if pending.route is not None:
            pending.route.inflight.pop(pending.id, None)
            route = pending.route
            pending.route = None
            if route.draining and not route.inflight:
                self._drained(route)
        else:
            with contextlib.suppress(ValueError):
                self.waiting.remove(pending)
