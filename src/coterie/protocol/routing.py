"""The request router: every rule between ``send`` and its one answer (sans-I/O).

Rule 1 (after h11): everything that decides where a request goes, how long it
may wait and whether it is answered lives in :class:`Router`. Adapters feed it
inputs and carry out the outcomes it returns; they never decide.

Inputs (methods), each taking the current time ``now`` in seconds where time
matters:

- :meth:`Router.submit` a request; :meth:`Router.cancel` one;
- :meth:`Router.reply` a reply frame that arrived from a peer;
- :meth:`Router.peer_up`, :meth:`Router.peer_changed`,
  :meth:`Router.peer_leaving`, :meth:`Router.peer_returned`,
  :meth:`Router.link_lost` for what happens to responders;
- :meth:`Router.expire` when the clock reaches :meth:`Router.next_deadline`;
- :meth:`Router.close` to fail everything.

Outcomes (returned lists): :class:`Send` this frame on that peer,
:class:`Resolve` request X with a value, :class:`Fail` request X with an error,
:class:`Drained` (a leaving peer holds nothing more: close its link).

The rules:

- a request goes to a peer whose responder serves its type (``respondsTo``)
  and ``__subset``, and is not leaving; among those, by the balancing policy:
  round robin, fewest in flight, or fastest recent replies;
- with no such peer it waits in a bounded queue; when peers appear after a
  time with none, the first takes the oldest request at once and the rest of
  the backlog waits ``settle`` seconds so that it is spread over every peer
  that turned up meanwhile, not poured onto the first;
- a request pinned to one node (``node=``) goes to that peer only, and is
  refused at once (``LookupError``) when that peer is not up or does not
  serve it;
- each request may have a deadline, a timeout from submission or an absolute
  time (the earlier holds); past it the request is withdrawn wherever it is
  and fails with :class:`~coterie.errors.RequestTimeoutError`, and one whose
  absolute deadline is already past fails at once, unsent;
- when a link is lost, its requests in flight go back to the front of the
  queue and are sent elsewhere, unless marked ``retry=False``: those fail
  fast with :class:`~coterie.errors.LinkLostError`;
- a reply is matched only on the peer that carries its request, and only
  once: every request yields exactly one :class:`Resolve` or :class:`Fail`,
  and a late duplicate is counted and dropped;
- a handler error with ``code: "retryable"`` (a handler that raised
  :class:`~coterie.errors.Retryable`) sends the request to another
  responder after a back-off wait (:class:`~coterie.protocol.backoff.Backoff`,
  :data:`RETRY_FIRST` doubling to :data:`RETRY_MAX`, the jitter ``draw``
  given to :meth:`Router.reply` by the adapter), never to the node that
  just ran it, and only within the request's bound: a request with no
  bound, pinned to one node, or whose bound ends before the wait does,
  fails at once with that error; one still unanswered when its bound ends
  fails with the *last* retryable error rather than a timeout;
- a request that outlives the *attempt bound* on its peer is sent elsewhere,
  as on a lost link, and counts as a failure of that peer for outlier
  ejection (:mod:`coterie.protocol.ejection`, which decides who is out of
  the rotation and when a probe goes there; the router asks it while
  picking). The attempt bound adapts: :data:`ATTEMPT_FACTOR` times the
  slowest reply among the last few hundred, and at least
  :data:`ATTEMPT_FLOOR` seconds; with no reply seen yet there is none.

The router never reads a clock, draws a random number or touches a socket or
a future: the same inputs always give the same outcomes.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from typing import Any, Literal, NamedTuple

from coterie.errors import (
    CoterieError,
    LinkLostError,
    QueueFullError,
    RemoteError,
    RequestTimeoutError,
)
from coterie.protocol.backoff import Backoff
from coterie.protocol.codes import QUEUE_FULL, RETRYABLE
from coterie.protocol.ejection import Ejection, Health
from coterie.protocol.pairing import serves
from coterie.protocol.slowstart import SlowStart

__all__ = [
    "BALANCES",
    "RETRY_FIRST",
    "RETRY_MAX",
    "Balance",
    "Drained",
    "Fail",
    "Outcome",
    "Request",
    "Resolve",
    "Router",
    "Send",
]

Balance = Literal["round_robin", "pending", "time"]
#: The balancing policies :class:`Router` knows.
BALANCES: tuple[Balance, ...] = ("round_robin", "pending", "time")

#: Time balancing forgets reply times older than this many seconds, and sends
#: every Nth request to the next peer in turn to keep measuring the others.
TIME_WINDOW = 10.0
TIME_EXPLORE_EVERY = 10
_SAMPLES = 64

#: The adaptive attempt bound: ``max(ATTEMPT_FLOOR, ATTEMPT_FACTOR * slowest)``.
ATTEMPT_FACTOR, ATTEMPT_FLOOR = 10.0, 1.0
_SLOWEST_WINDOW = 256

#: Back-off between the tries of a request whose handler raised ``Retryable``:
#: the first and largest wait, in seconds (full jitter: times the draw).
RETRY_FIRST, RETRY_MAX = 0.02, 0.5


class Request:
    """One request between ``submit`` and its answer.

    Args:
        request_id: Unique among this router's live requests; replies echo it.
        frame: The encoded request frame, sent as is (and again on failover).
        request_type: The request's ``type``, matched against ``respondsTo``.
        subset: Only peers advertising this ``subset`` take it (``__subset``).
        retry: Resend it elsewhere when its link is lost (default), or fail.
        timeout: Seconds from submission to give up; ``None`` for no bound.
        deadline: An absolute time (the clock of ``now``) to give up by,
            whatever ``timeout`` says: the earlier of the two holds. A
            deadline already past fails the request at once, unsent. (For
            deadlines handed down by a caller, issue 25.)
        node: Only this peer takes it (``send(node=...)``); ``None`` for any.
    """

    __slots__ = (
        "avoid",
        "backoff",
        "bound",
        "deadline",
        "done",
        "frame",
        "id",
        "last_error",
        "node",
        "peer",
        "ran_on",
        "refused",
        "retry",
        "retry_at",
        "sent_at",
        "subset",
        "type",
        "waiter",
    )

    def __init__(
        self,
        request_id: str,
        frame: bytes,
        request_type: Any,
        *,
        subset: Any = None,
        retry: bool = True,
        timeout: float | None = None,
        deadline: float | None = None,
        node: str | None = None,
    ) -> None:
        self.id = request_id
        self.frame = frame
        self.type = request_type
        self.subset = subset
        self.retry = retry
        self.node = node
        #: The given deadline until submit, then the earlier of it and
        #: now + timeout; infinity without either.
        self.deadline = math.inf if deadline is None else deadline
        #: The peer carrying it, or ``None`` while it waits.
        self.peer: str | None = None
        self.sent_at = 0.0
        #: Answered, failed or withdrawn: it yields no further outcome.
        self.done = False
        #: A peer it outlived its attempt bound on: another is preferred.
        self.avoid: str | None = None
        #: Peers that refused it unrun (``queue_full``): it never goes there again.
        self.refused: set[str] | None = None
        #: The node whose handler last asked for a retry: the next try goes elsewhere.
        self.ran_on: str | None = None
        #: That handler's error: the caller gets it if the bound ends first.
        self.last_error: RemoteError | None = None
        #: Back-off between retryable tries (made on the first one).
        self.backoff: Backoff | None = None
        #: When its back-off wait ends (it is resent then), or ``None``.
        self.retry_at: float | None = None
        #: The timeout given (the key of its deadline queue), or ``None``.
        self.bound: float | None = timeout
        #: The adapter's own handle (its future); the router never reads it.
        self.waiter: Any = None

    def __repr__(self) -> str:
        return f"<Request {self.id} {self.type!r} on {self.peer or 'queue'}>"


class Send(NamedTuple):
    """Write ``frame`` on the link to ``peer``."""

    peer: str
    frame: bytes


class Resolve(NamedTuple):
    """The request is answered with ``value``."""

    request: Request
    value: Any


class Fail(NamedTuple):
    """The request failed with ``error``."""

    request: Request
    error: CoterieError


class Drained(NamedTuple):
    """``peer`` is leaving and holds no request any more: its link may close."""

    peer: str


Outcome = Send | Resolve | Fail | Drained

#: Hot paths build outcomes with ``tuple.__new__``: the same objects, without
#: the Python-level ``__new__`` every NamedTuple call runs through.
_new = tuple.__new__


class _Route:
    """What the router knows of one connected responder."""

    __slots__ = (
        "advertisement",
        "answered",
        "errors",
        "health",
        "id",
        "inflight",
        "leaving",
        "name",
        "order",
        "requests",
        "samples",
    )

    def __init__(self, peer: str, advertisement: Mapping[str, Any], health: Health) -> None:
        self.id = peer
        self.advertisement = advertisement
        self.name = str(advertisement.get("name", peer))
        self.inflight: dict[str, Request] = {}
        #: (sent_at, request) in send order: the head is the oldest in flight.
        self.order: deque[tuple[float, Request]] = deque()
        self.leaving = False
        self.samples: deque[tuple[float, float]] = deque(maxlen=_SAMPLES)
        self.health = health
        #: Requests sent on this link (resends included) and error replies from it.
        self.requests = 0
        self.errors = 0
        #: Answers on this link, counted up to slow start's end.
        self.answered = 0

    def oldest(self) -> tuple[float, Request] | None:
        """The oldest request still in flight here, dropping stale entries."""
        order = self.order
        while order:
            sent_at, request = order[0]
            if request.peer == self.id and request.sent_at == sent_at and not request.done:
                return order[0]
            order.popleft()
        return None

    def takes(self, request: Request) -> bool:
        if self.leaving or request.ran_on == self.id:
            return False
        if request.node is not None and request.node != self.id:
            return False
        adv = self.advertisement
        if request.subset is not None and adv.get("subset") != request.subset:
            return False
        return serves(adv, request.type)

    def average(self, now: float) -> float:
        recent = [took for at, took in self.samples if now - at <= TIME_WINDOW]
        return sum(recent) / len(recent) if recent else 0.0


def _is_error(value: Any) -> bool:
    # JavaScript truthiness, as cote's requester: a thrown Error arrives as {}
    # and is still an error; null, false, 0 and "" are not.
    return value is not None and value is not False and value != 0 and value != ""


class Router:
    """Routes requests over the peers it is told about.

    Args:
        balance: ``"round_robin"`` (cote's Requester), ``"pending"`` (fewest
            in flight, cote's PendingBalancedRequester) or ``"time"`` (fastest
            recent replies, cote's TimeBalancedRequester).
        max_waiting: Most requests that may wait for a peer at once.
        settle: Seconds a backlog waits for more peers after the first one
            appears, so that it is spread over them.
        attempt_timeout: How long one attempt on one peer may take before
            the peer counts a failure and the request is sent elsewhere:
            ``"auto"`` (adaptive, see the module doc), seconds, or ``None``
            (never; the request's own bound still holds).

    Raises:
        ValueError: For an unknown policy or a negative bound.
    """

    def __init__(
        self,
        *,
        balance: Balance = "round_robin",
        max_waiting: int = 10_000,
        settle: float = 0.05,
        attempt_timeout: float | Literal["auto"] | None = "auto",
    ) -> None:
        if balance not in BALANCES:
            raise ValueError(f"unknown balance policy {balance!r}; use one of {BALANCES}")
        if max_waiting < 0 or settle < 0:
            raise ValueError("max_waiting and settle must not be negative")
        if attempt_timeout not in (None, "auto") and not attempt_timeout > 0:  # type: ignore[operator]
            raise ValueError(f"attempt_timeout must be positive, got {attempt_timeout!r}")
        self.attempt_timeout = attempt_timeout
        self._outliers = Ejection()
        self._slow = SlowStart()
        #: Routes still in slow start (callers skip every check at 0).
        self._starting = 0
        # The slowest reply of the previous and of the current window.
        self._slow_previous = 0.0
        self._slow_current = 0.0
        self._replies_in_window = 0
        self._time_balance = balance == "time"
        #: Requests sent again because they outlived the attempt bound.
        self.attempts_expired = 0
        self.balance: Balance = balance
        self.max_waiting = max_waiting
        self.settle = settle
        self._routes: dict[str, _Route] = {}
        self._requests: dict[str, Request] = {}
        self._waiting: deque[Request] = deque()
        # One FIFO per timeout value: equal timeouts expire in submission
        # order, so the head of each queue is its earliest deadline.
        self._deadlines: dict[float, deque[Request]] = {}
        self._settle_until: float | None = None
        #: Requests in a back-off wait before their next try (``retry_at`` set).
        self._backing_off: list[Request] = []
        self._turn = 0
        self._sent = 0
        #: Requests sent again to another peer: their link was lost, or they
        #: outlived the attempt bound.
        self.resent = 0
        #: Replies that matched no live request on their peer (dropped).
        self.late_replies = 0

    # -- queries --------------------------------------------------------------

    @property
    def inflight(self) -> int:
        """Requests sent and not yet answered."""
        return sum(len(r.inflight) for r in self._routes.values())

    @property
    def waiting(self) -> int:
        """Requests queued for a peer."""
        return len(self._waiting)

    @property
    def pending(self) -> int:
        """Live requests: waiting or in flight."""
        return len(self._requests)

    def peers(self) -> list[str]:
        """Connected peers, in the order they came up."""
        return list(self._routes)

    def traffic(self) -> dict[str, tuple[int, int]]:
        """``{peer: (requests sent, error replies)}`` for every connected responder.

        Counted since the link came up; resends count on the link they go to.
        """
        return {peer: (r.requests, r.errors) for peer, r in self._routes.items()}

    def get(self, request_id: str) -> Request | None:
        """The live request ``request_id`` (waiting or in flight), or ``None``."""
        return self._requests.get(request_id)

    def advertisement(self, peer: str) -> Mapping[str, Any] | None:
        """What ``peer`` advertises, as routing uses it, or ``None`` when it is not up."""
        route = self._routes.get(peer)
        return route.advertisement if route is not None else None

    def serving(self, request_type: Any, subset: Any = None) -> list[str]:
        """The peers up and not leaving that take a request of this type (and subset)."""
        probe = Request("", b"", request_type, subset=subset)
        return [peer for peer, route in self._routes.items() if route.takes(probe)]

    def inflight_on(self, peer: str) -> int:
        """Requests in flight on ``peer`` (0 for an unknown one)."""
        route = self._routes.get(peer)
        return len(route.inflight) if route is not None else 0

    @property
    def tracked(self) -> int:
        """Entries held for deadlines and attempt bounds: about the requests in flight.

        Answered ones are dropped as they reach the head of their queue.
        """
        return sum(len(q) for q in self._deadlines.values()) + sum(
            len(r.order) for r in self._routes.values()
        )

    @property
    def ejections(self) -> int:
        """Peers taken out of the rotation so far."""
        return self._outliers.ejections

    def ejected(self, now: float) -> list[str]:
        """Connected peers out of the rotation at ``now``."""
        return [peer for peer, route in self._routes.items() if Ejection.is_out(route.health, now)]

    def attempt_bound(self) -> float | None:
        """Seconds an attempt may take now, or ``None`` for no bound."""
        if self.attempt_timeout is None:
            return None
        if self.attempt_timeout != "auto":
            return self.attempt_timeout
        slowest = max(self._slow_previous, self._slow_current)
        if slowest <= 0:
            return None
        return max(ATTEMPT_FLOOR, ATTEMPT_FACTOR * slowest)

    def next_deadline(self) -> float | None:
        """When :meth:`expire` next has work: a deadline, an attempt bound, a settle end."""
        earliest = math.inf if self._settle_until is None else self._settle_until
        for request in self._backing_off:
            if request.retry_at < earliest:  # type: ignore[operator]  # set while listed
                earliest = request.retry_at  # type: ignore[assignment]
        bound = self.attempt_bound()
        if bound is not None:
            for route in self._routes.values():
                head = route.oldest()
                if head is not None and head[0] + bound < earliest:
                    earliest = head[0] + bound
        for timeout, queue in list(self._deadlines.items()):
            while queue and queue[0].done:
                queue.popleft()
            if not queue:
                del self._deadlines[timeout]
            elif queue[0].deadline < earliest:
                earliest = queue[0].deadline
        return None if earliest == math.inf else earliest

    def next_retry(self) -> float | None:
        """When the earliest back-off wait of a retryable request ends, or ``None``."""
        if not self._backing_off:
            return None
        return min(r.retry_at for r in self._backing_off)  # type: ignore[type-var]

    def due(self, request: Request) -> float | None:
        """When :meth:`expire` next has work for ``request``, or ``None``.

        Its deadline, or the end of its attempt bound on the peer carrying
        it, whichever comes first. An adapter whose timer already fires by
        :meth:`next_deadline` keeps it at or before this for a request just
        submitted, and is then due for every request.
        """
        at = request.deadline
        if request.peer is not None:
            bound = self.attempt_bound()
            if bound is not None and request.sent_at + bound < at:
                at = request.sent_at + bound
        return None if at == math.inf else at

    # -- requests ----------------------------------------------------------------

    def submit(self, request: Request, now: float) -> list[Outcome]:
        """Send a request now, or queue it until a peer can take it.

        Its ``timeout`` (given to :class:`Request`) starts counting at ``now``.

        Raises:
            QueueFullError: When it would have to wait and the queue is full.
            ValueError: When its id is already live.
        """
        if request.id in self._requests:
            raise ValueError(f"request id {request.id!r} is already pending")
        if request.node is not None:
            self._check_node(request)
        timeout = request.bound
        if request.deadline != math.inf:  # a deadline given: the earlier bound holds
            if request.deadline <= now:
                return [self._finish_failed(request, self._late_error(request))]
            if timeout is None or request.deadline < now + timeout:
                # Its own key: one more (short) deadline queue.
                timeout = request.bound = request.deadline - now
        route = None if self._settle_until is not None else self._pick(request, now)
        if route is None and len(self._waiting) >= self.max_waiting:
            raise QueueFullError(
                f"{len(self._waiting)} requests already wait for a responder "
                f"(max_waiting={self.max_waiting})"
            )
        self._requests[request.id] = request
        if timeout is not None:
            end = now + timeout
            if end < request.deadline:
                request.deadline = end
            queue = self._deadlines.get(timeout)
            if queue is None:
                queue = self._deadlines[timeout] = deque()
            queue.append(request)
        if route is None:
            self._waiting.append(request)
            return []
        return [self._send(route, request, now)]

    def reply(self, peer: str, args: list[Any], now: float, draw: float = 1.0) -> list[Outcome]:
        """A reply frame ``[error, result..., id]`` arrived from ``peer``.

        Args:
            peer: The peer it came from.
            args: The frame.
            now: The adapter's clock.
            draw: A random value in ``[0, 1]``: the jitter of the back-off
                wait when the reply asks for a retry (``1.0``: the whole delay).
        """
        route = self._routes.get(peer)
        if route is None:
            self.late_replies += 1
            return []
        if len(args) < 2:  # not a reply: this peer misbehaves
            self._failed(route.id, route.health, now)
            return []
        try:
            request = route.inflight.pop(args[-1], None)
        except TypeError:  # an unhashable id: no request of ours
            request = None
        if request is None:
            self.late_replies += 1
            return []
        took = now - request.sent_at
        if self._time_balance:
            route.samples.append((now, took))
        if took > self._slow_current:
            self._slow_current = took
        self._replies_in_window += 1
        if self._replies_in_window >= _SLOWEST_WINDOW:
            self._slow_previous, self._slow_current = self._slow_current, 0.0
            self._replies_in_window = 0
        health = route.health
        if health.failures or health.probing:
            self._outliers.recovered(health)
        if self._starting and self._slow.starting(route.answered):
            route.answered = self._slow.count(peer, route.answered)
            if not self._slow.starting(route.answered):
                self._starting -= 1
        request.peer = None
        out: list[Outcome]
        error = args[0]
        if error is None or not _is_error(error):  # most replies carry null
            request.done = True
            self._requests.pop(request.id, None)
            if request.bound is not None:
                self._trim_deadlines(request)
            out = [_new(Resolve, (request, args[1] if len(args) > 2 else None))]
        elif type(error) is dict and error.get("code") == QUEUE_FULL:
            out = self._refused(route, request, error)  # it never ran
        elif type(error) is dict and error.get("code") == RETRYABLE:
            route.errors += 1
            out = self._retryable(route, request, RemoteError(error), now, draw)
        else:
            route.errors += 1
            out = [self._finish_failed(request, RemoteError(error))]
        # Keep the attempt order short without a next_deadline() per send:
        # replies mostly come in order, so this one is usually the head.
        order = route.order
        if order and order[0][1] is request:
            order.popleft()
            if order:
                route.oldest()
        if route.leaving and not route.inflight:
            out.append(Drained(peer))
        if request.refused is not None and not request.done and self._settle_until is None:
            out.extend(self._drain(now))
        return out

    def cancel(self, request_id: str) -> list[Outcome]:
        """The caller gave up: withdraw the request; it yields no outcome."""
        request = self._requests.pop(request_id, None)
        if request is None:
            return []
        request.done = True
        return self._withdraw(request)

    def expire(self, now: float) -> list[Outcome]:
        """Fail the requests whose deadline is past; end a settle window that is over."""
        out: list[Outcome] = []
        for timeout, queue in list(self._deadlines.items()):
            while queue:
                head = queue[0]
                if head.done:
                    queue.popleft()
                elif head.deadline <= now:
                    queue.popleft()
                    error: CoterieError = head.last_error or self._timeout_error(head)
                    if head.peer is not None and head.peer in self._routes:
                        self._failed(head.peer, self._routes[head.peer].health, now)
                    out.extend(self._withdraw(head))
                    out.append(self._finish_failed(head, error))
                else:
                    break
            if not queue:
                del self._deadlines[timeout]
        bound = self.attempt_bound()
        if bound is not None:
            for route in list(self._routes.values()):
                oldest = route.oldest()
                while oldest is not None and oldest[0] + bound <= now:
                    out.extend(self._attempt_failed(route, oldest[1], now))
                    oldest = route.oldest()
        if self._backing_off:
            due = [r for r in self._backing_off if r.retry_at <= now]  # type: ignore[operator]
            if due:
                self._backing_off = [r for r in self._backing_off if r.retry_at > now]  # type: ignore[operator]
                for request in due:
                    request.retry_at = None
                self._waiting.extendleft(reversed(due))
                if self._settle_until is None:
                    out.extend(self._drain(now))
        if self._settle_until is not None and self._settle_until <= now:
            self._settle_until = None
            out.extend(self._drain(now))
        return out

    def peer_failed(self, peer: str, now: float) -> list[Outcome]:
        """``peer`` misbehaved: a frame that could not be decoded, or a link dead of silence.

        It counts one failure towards ejection (see the module doc).
        """
        route = self._routes.get(peer)
        health = route.health if route is not None else self._outliers.get(peer)
        if health is None:
            return []
        self._failed(peer, health, now)
        return []

    def close(self, error: CoterieError) -> list[Outcome]:
        """Fail every live request with ``error`` (the requester is closing)."""
        everything = list(self._requests.values())
        self._waiting.clear()
        self._backing_off.clear()
        self._deadlines.clear()
        self._settle_until = None
        for route in self._routes.values():
            route.inflight.clear()
        out: list[Outcome] = []
        for request in everything:
            request.peer = None
            out.append(self._finish_failed(request, error))
        return out

    # -- peers -------------------------------------------------------------------

    def peer_up(self, peer: str, advertisement: Mapping[str, Any], now: float) -> list[Outcome]:
        """A responder's link is up: it may take requests, waiting ones first.

        Raises:
            ValueError: When the peer is already up.
        """
        if peer in self._routes:
            raise ValueError(f"peer {peer!r} is already up")
        had_routes = any(not r.leaving for r in self._routes.values())
        health = self._outliers.record(peer)
        route = self._routes[peer] = _Route(peer, advertisement, health)
        route.answered = self._slow.begin(peer)
        if self._slow.starting(route.answered):
            self._starting += 1
        if not self._waiting or self._settle_until is not None:
            return []  # nothing to send, or a settle window gathers peers
        if had_routes or self.settle <= 0 or len(self._waiting) == 1:
            return self._drain(now)
        # The first responder after none takes the oldest request at once; the
        # rest wait a moment so that responders arriving together share them.
        out: list[Outcome] = []
        head = self._waiting[0]
        if route.takes(head):
            self._waiting.popleft()
            out.append(self._send(route, head, now))
        if self._waiting:
            self._settle_until = now + self.settle
        return out

    def peer_changed(
        self, peer: str, advertisement: Mapping[str, Any], now: float
    ) -> list[Outcome]:
        """A responder's advertisement changed (new types): waiting requests may go."""
        route = self._routes.get(peer)
        if route is None:
            return []
        route.advertisement = advertisement
        route.name = str(advertisement.get("name", peer))
        return self._drain(now) if self._settle_until is None else []

    def peer_leaving(self, peer: str) -> list[Outcome]:
        """The responder is leaving: nothing new goes there; its replies still count."""
        route = self._routes.get(peer)
        if route is None or route.leaving:
            return []
        route.leaving = True
        return [] if route.inflight else [Drained(peer)]

    def peer_returned(self, peer: str, now: float) -> list[Outcome]:
        """A leaving responder came back before its link closed."""
        route = self._routes.get(peer)
        if route is None or not route.leaving:
            return []
        route.leaving = False
        return self._drain(now) if self._settle_until is None else []

    def link_lost(self, peer: str, now: float) -> list[Outcome]:
        """The link to ``peer`` is gone: resend its requests or fail them."""
        route = self._routes.pop(peer, None)
        if route is None:
            return []
        if route.leaving:
            self._outliers.drop(peer)  # gone for good: forget its record
            self._slow.forget(peer)
        if self._slow.starting(route.answered):
            self._starting -= 1
        route.health.probing = False
        lost = list(route.inflight.values())
        route.inflight.clear()
        out: list[Outcome] = []
        resend: list[Request] = []
        for request in lost:
            request.peer = None
            if request.retry:
                resend.append(request)
            else:
                out.append(
                    self._finish_failed(
                        request,
                        LinkLostError(
                            f"link to {route.name} was lost with request {request.id} "
                            "in flight; not resent because retry=False"
                        ),
                    )
                )
        if resend:
            self.resent += len(resend)
            self._waiting.extendleft(reversed(resend))
            if self._settle_until is None:
                out.extend(self._drain(now))
        return out

    # -- internals -----------------------------------------------------------------

    def _pick(self, request: Request, now: float) -> _Route | None:
        routes = self._routes
        if not routes:
            return None
        if len(routes) == 1:
            (only,) = routes.values()
            if (
                self._outliers.ejected_n
                and only.health.ejected_until is not None
                and not Ejection.may_probe(only.health, now)
            ):
                return None
            return only if only.takes(request) else None
        refused = request.refused  # peers that refused it unrun never get it again
        candidates = [
            r
            for r in routes.values()
            if r.takes(request) and (refused is None or r.id not in refused)
        ]
        if not candidates:
            return None
        if self._outliers.ejected_n and any(r.health.ejected_until is not None for r in candidates):
            for route in candidates:
                if route.health.ejected_until is not None and Ejection.may_probe(route.health, now):
                    return route  # its one probe
            candidates = [r for r in candidates if r.health.ejected_until is None]
            if not candidates:
                return None
        if request.avoid is not None and len(candidates) > 1:
            candidates = [r for r in candidates if r.id != request.avoid] or candidates
        if self._starting and len(candidates) > 1:  # slow start: a new peer's small share
            slow = self._slow
            if any(not slow.starting(r.answered) for r in candidates):
                candidates = [r for r in candidates if slow.admits(r.answered, len(r.inflight))]
        if self.balance == "pending":
            return min(candidates, key=lambda r: len(r.inflight))
        if self._time_balance:
            self._sent += 1
            if self._sent % TIME_EXPLORE_EVERY == 0:  # explore: the peers in turn
                return candidates[(self._sent // TIME_EXPLORE_EVERY) % len(candidates)]
            untried = [r for r in candidates if not r.samples]
            if untried:  # measure every peer: the least busy unmeasured one
                return min(untried, key=lambda r: len(r.inflight))
            return min(candidates, key=lambda r: r.average(now))
        self._turn += 1
        return candidates[self._turn % len(candidates)]

    def _send(self, route: _Route, request: Request, now: float) -> Send:
        route.requests += 1
        request.peer = route.id
        request.sent_at = now
        route.inflight[request.id] = request
        if self.attempt_timeout is not None:
            route.order.append((now, request))
        return _new(Send, (route.id, request.frame))

    # -- outlier ejection ------------------------------------------------------------

    def _failed(self, peer: str, health: Health, now: float) -> None:
        """``peer`` failed a request: tell ejection, which never ejects the last one."""

        def others() -> bool:
            return any(
                r.id != peer and not r.leaving and r.health.ejected_until is None
                for r in self._routes.values()
            )

        self._outliers.failed(health, now, others)

    def _attempt_failed(self, route: _Route, request: Request, now: float) -> list[Outcome]:
        """``request`` outlived the attempt bound on ``route``: count it, send it elsewhere."""
        self.attempts_expired += 1
        self._failed(route.id, route.health, now)
        if not request.retry:
            # Work that must not run twice stays where it is; only its own
            # bound ends it. Take it out of the attempt order.
            route.order.popleft()
            return []
        route.inflight.pop(request.id, None)
        route.order.popleft()
        request.peer = None
        request.avoid = route.id
        self.resent += 1
        self._waiting.appendleft(request)
        out: list[Outcome] = []
        if route.leaving and not route.inflight:
            out.append(Drained(route.id))
        if self._settle_until is None:
            out.extend(self._drain(now))
        return out

    def _drain(self, now: float) -> list[Outcome]:
        if not self._waiting:
            return []
        out: list[Outcome] = []
        still: deque[Request] = deque()
        for request in self._waiting:
            route = self._pick(request, now)
            if route is None:
                still.append(request)
            else:
                out.append(self._send(route, request, now))
        self._waiting = still
        return out

    def _withdraw(self, request: Request) -> list[Outcome]:
        """Take a request out of its route or the queue."""
        if request.peer is None:
            if request.retry_at is not None:
                self._backing_off.remove(request)
                request.retry_at = None
            elif request in self._waiting:
                self._waiting.remove(request)
            return []
        route = self._routes.get(request.peer)
        request.peer = None
        if route is None:  # pragma: no cover - link_lost clears request.peer as it drops a route
            return []
        route.inflight.pop(request.id, None)
        if route.leaving and not route.inflight:
            return [Drained(route.id)]
        return []

    def _trim_deadlines(self, request: Request) -> None:
        """Drop answered requests from the head of ``request``'s deadline queue.

        Answers mostly come in order, so this keeps every queue about as long
        as the requests in flight: :meth:`expire` never has a backlog of
        answered ones to wade through (which stalled replies for tens of ms).
        """
        queue = self._deadlines.get(request.bound)  # type: ignore[arg-type]
        while queue and queue[0].done:
            queue.popleft()

    def _refused(self, route: _Route, request: Request, error: dict[str, Any]) -> list[Outcome]:
        """``route`` refused ``request`` before running it (its queue is full).

        It never ran, so it goes to another responder that takes it, even with
        ``retry=False``; when every one has refused it, it fails with
        :class:`~coterie.QueueFullError`.
        """
        refused = request.refused
        if refused is None:
            refused = request.refused = set()
        refused.add(route.id)
        if not any(r.takes(request) and r.id not in refused for r in self._routes.values()):
            message = error.get("message", "queue full")
            return [
                self._finish_failed(
                    request,
                    QueueFullError(
                        f"request {request.id} ({request.type!r}) was refused unrun by every "
                        f"responder that serves it ({len(refused)}): {message}; raise their "
                        "max_queue or max_concurrent, or add responders"
                    ),
                )
            ]
        self.resent += 1
        self._waiting.appendleft(request)
        return []

    def _retryable(
        self, route: _Route, request: Request, error: RemoteError, now: float, draw: float
    ) -> list[Outcome]:
        """``route``'s handler ran ``request`` and asked for a retry (``code: "retryable"``).

        After a back-off wait it goes to another responder, never back to
        ``route`` next; it fails at once with ``error`` when it may not wait
        (no bound, pinned to one node, or the bound ends before the wait).
        """
        backoff = request.backoff
        if backoff is None:
            backoff = request.backoff = Backoff(RETRY_FIRST, RETRY_MAX)
        wait = backoff.failed(draw)
        if request.node is not None or not now + wait < request.deadline < math.inf:
            return [self._finish_failed(request, error)]
        request.ran_on = route.id
        request.last_error = error
        request.retry_at = now + wait
        self.resent += 1
        self._backing_off.append(request)
        return []

    def _finish_failed(self, request: Request, error: CoterieError) -> Fail:
        request.done = True
        self._requests.pop(request.id, None)
        if request.bound is not None:
            self._trim_deadlines(request)
        return Fail(request, error)

    def _check_node(self, request: Request) -> None:
        """A request pinned to one node: that node must be up and take it."""
        route = self._routes.get(request.node)  # type: ignore[arg-type]
        if route is None or route.leaving:
            linked = ", ".join(sorted(self.serving(request.type, request.subset))) or "none"
            raise LookupError(
                f"node {request.node!r} is not linked (or is leaving), so it cannot take "
                f"request {request.id} ({request.type!r}); linked responders that serve it: "
                f"{linked}"
            )
        if not route.takes(request):
            raise LookupError(
                f"node {request.node!r} ({route.name}) does not serve {request.type!r}"
                + ("" if request.subset is None else f" in subset {request.subset!r}")
            )

    def _late_error(self, request: Request) -> RequestTimeoutError:
        return RequestTimeoutError(
            f"request {request.id} ({request.type!r}) was not sent: its deadline had already passed"
        )

    def _timeout_error(self, request: Request) -> RequestTimeoutError:
        route = self._routes.get(request.peer) if request.peer is not None else None
        routes = self._routes.values()
        if route is not None:
            where = f"in flight to {route.name}"
        elif routes and not any(serves(r.advertisement, request.type) for r in routes):
            where = f"waiting: no responder serves {request.type!r}"
        else:
            where = "waiting for a responder"
        return RequestTimeoutError(f"request {request.id} ({request.type!r}) timed out {where}")
