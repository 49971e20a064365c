"""Observers: the one interface through which components report what they do.

Design: in the style of httpcore's trace events and aiohttp's
``TraceConfig``, a component fires one event per thing that happens to it
(a request sent and settled, a request handled or refused, a link up or
down, an event published or received, the component started or closed) on
one :class:`Observer`. :mod:`coterie.metrics` and :mod:`coterie.tracing` are
observers; so is anything you write by subclassing :class:`Observer` and
overriding the events you need (every event is a no-op by default).

A component holds one observer, or ``None`` when nothing observes it, so
with metrics and tracing off the request path costs one ``None`` check.
:func:`combine` makes one observer of several: each event goes to each in
turn.

Gauges are not events: what a component holds now (requests in flight and
waiting, links, resent and ejected counts, ...) is read when wanted from its
``stats()``, a typed snapshot (:class:`Stats` and its subclasses, one per
role), so counting them costs the request path nothing.

The events, in the order a request meets them:

- requester: :meth:`Observer.request_begin` once per request, before it is
  framed (an observer may return a changed request: tracing adds its context
  in the ``__trace`` field), then :meth:`Observer.request_end` once when it
  is settled, with the error it failed with or ``None``;
- responder: :meth:`Observer.handling` before a handler runs, whose
  :class:`Handling` says in which :mod:`contextvars` context to run it and
  hears :meth:`Handling.done` once the reply is written; or
  :meth:`Observer.refused` when the responder answered an error itself and
  ran no handler;
- links: :meth:`Observer.link_opened` and :meth:`Observer.link_closed`, for
  every link the component accepts or opens (to responders, publishers and
  monitors alike);
- pub/sub: :meth:`Observer.published`, :meth:`Observer.received`;
- lifecycle: :meth:`Observer.started`, :meth:`Observer.closed`.

Events run on the component's event loop, inline: an observer must be quick
and must not raise (an exception escapes into the component's code path).

:func:`outcome_of` names how a request ended, for labels and span attributes:
it is :func:`coterie.protocol.codes.code_of`, the one vocabulary of outcome
codes that the wire's error ``code`` uses too. :data:`TRACE_FIELD` is the
request field that carries W3C trace context (see :mod:`coterie.tracing`).
"""

from __future__ import annotations

import contextvars
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from coterie.protocol.codes import code_of as outcome_of
from coterie.protocol.messages import TRACE_FIELD

__all__ = [
    "TRACE_FIELD",
    "Handling",
    "ListenerStats",
    "Observed",
    "Observer",
    "PublisherStats",
    "RequesterStats",
    "ResponderStats",
    "Stats",
    "SubscriberStats",
    "combine",
    "outcome_of",
]

# -- snapshots ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Stats:
    """What a component holds now (``component.stats()``); every role reports these.

    Attributes:
        role: ``requester``, ``responder``, ``publisher``, ``subscriber`` or
            ``monitor``.
        links: Open links to the peers it pairs with (requesters and
            subscribers: the ones it opened; listening roles: the ones
            accepted).
        monitors: Open status links to monitors (requesters and subscribers).
        nodes: Every node discovery knows now, by instance id: its role.
    """

    role: str
    links: int
    monitors: int
    nodes: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class RequesterStats(Stats):
    """A :class:`~coterie.Requester`'s snapshot.

    Attributes:
        in_flight: Requests sent to a responder and not answered yet.
        waiting: Requests queued for a responder.
        in_flight_on: Requests in flight by responder instance id (every
            connected responder, 0 included).
        ejected: Connected responders out of the rotation now (outlier
            ejection, :mod:`coterie.protocol.routing`).
        ejections: Times a responder was taken out of the rotation.
        resent: Requests sent again to another responder after their link
            was lost.
        attempts_expired: Requests sent again because one attempt outlived
            the attempt bound.
        late_replies: Replies that matched no live request (dropped).
    """

    in_flight: int
    waiting: int
    in_flight_on: Mapping[str, int]
    ejected: tuple[str, ...]
    ejections: int
    resent: int
    attempts_expired: int
    late_replies: int


@dataclass(frozen=True, slots=True)
class ListenerStats(Stats):
    """What a listening component (responder, publisher, monitor) reports.

    Attributes:
        refused_connections: Links refused at ``max_connections``.
        idle_closed: Links closed for sending no frame within ``idle_timeout``.
    """

    refused_connections: int
    idle_closed: int


@dataclass(frozen=True, slots=True)
class ResponderStats(ListenerStats):
    """A :class:`~coterie.Responder`'s snapshot.

    Attributes:
        in_progress: Requests whose coroutine handler is still running.
        handled: Requests answered (by a handler or with an error).
    """

    in_progress: int
    handled: int


@dataclass(frozen=True, slots=True)
class PublisherStats(ListenerStats):
    """A :class:`~coterie.Publisher`'s snapshot.

    Attributes:
        published: Events published (once each, however many subscribers).
        dropped: Event copies dropped for subscribers too slow to take them.
    """

    published: int
    dropped: int


@dataclass(frozen=True, slots=True)
class SubscriberStats(Stats):
    """A :class:`~coterie.Subscriber`'s snapshot.

    Attributes:
        received: Events accepted by its ``subscribes_to`` filter.
    """

    received: int


class Observed(Protocol):
    """What an observer may know of its component: its name and its snapshot."""

    @property
    def name(self) -> str:
        """The component's name."""

    def stats(self) -> Stats:
        """What the component holds now."""


# -- events ---------------------------------------------------------------------------


class Handling(Protocol):
    """One request being handled by a responder."""

    #: Run the handler (and create its task) in this context; ``None``: as is.
    context: contextvars.Context | None

    def done(self, error: BaseException | None) -> None:
        """The reply is written: ``error`` is what the handler raised, or ``None``."""


class _Unobserved:
    """The :class:`Handling` of an observer that does not follow handlers."""

    __slots__ = ()
    context: contextvars.Context | None = None

    def done(self, error: BaseException | None) -> None:
        """Nothing to do."""


_UNOBSERVED = _Unobserved()


class Observer:
    """Hears a component's events; every event does nothing unless overridden.

    One observer serves one component (:class:`coterie.metrics.Metrics` and
    :class:`coterie.tracing.Tracing` make one per component). Events run
    inline on the component's event loop: keep them quick, and do not raise.
    """

    __slots__ = ()

    # -- lifecycle --------------------------------------------------------------

    def started(self) -> None:
        """The component started (called on its event loop)."""

    def closed(self) -> None:
        """The component closed; no event follows."""

    # -- requester --------------------------------------------------------------

    def request_begin(self, request: dict[str, Any], request_id: str) -> dict[str, Any]:
        """A request is about to be framed; returns the request to send.

        Return ``request`` itself, or a new dict (never change it in place:
        it is the caller's).
        """
        return request

    def request_end(self, request_id: str, request_type: Any, error: BaseException | None) -> None:
        """The request is settled: answered (``None``), or failed with ``error``.

        Called once per :meth:`request_begin`, whatever the outcome; an
        ``error`` that is a :class:`~coterie.RemoteError` means the responder
        answered with an error.
        """

    # -- responder --------------------------------------------------------------

    def handling(self, request_type: Any, carrier: Any) -> Handling:
        """A responder is about to run the handler of ``request_type``.

        Args:
            request_type: The request's ``type`` (a string: it has a handler).
            carrier: The request's ``__trace`` field, taken out of the
                request the handler gets (``None`` without one).

        Returns:
            The :class:`Handling` that hears how it ends.
        """
        return _UNOBSERVED

    def refused(self, request_type: Any, outcome: str) -> None:
        """A responder answered an error and ran no handler (``no_handler``, ``bad_request``).

        ``request_type`` is whatever the request carried (``None`` for none).
        """

    # -- links ------------------------------------------------------------------

    def link_opened(self, address: str, again: bool) -> None:
        """A link is up: accepted from, or opened to, ``address`` (``host:port``).

        ``again`` is true when this component had a link to that node
        before (a reconnect); always false for accepted links.
        """

    def link_closed(self, address: str, error: BaseException | None) -> None:
        """A link that :meth:`link_opened` reported is gone (``error``: why, if known)."""

    # -- pub/sub ----------------------------------------------------------------

    def published(self, event: str) -> None:
        """A publisher published ``event`` (once, however many subscribers get it)."""

    def received(self, event: str) -> None:
        """A subscriber accepted ``event`` (it passed the ``subscribes_to`` filter)."""


class _AllHandling:
    __slots__ = ("context", "each")

    def __init__(self, each: list[Handling]) -> None:
        self.each = each
        self.context: contextvars.Context | None = None
        for handling in each:
            if handling.context is not None:
                self.context = handling.context

    def done(self, error: BaseException | None) -> None:
        for handling in self.each:
            handling.done(error)


class _All(Observer):
    """Several observers as one: each event goes to each, in the given order."""

    __slots__ = ("each",)

    def __init__(self, each: tuple[Observer, ...]) -> None:
        self.each = each

    def started(self) -> None:
        for observer in self.each:
            observer.started()

    def closed(self) -> None:
        for observer in self.each:
            observer.closed()

    def request_begin(self, request: dict[str, Any], request_id: str) -> dict[str, Any]:
        for observer in self.each:
            request = observer.request_begin(request, request_id)
        return request

    def request_end(self, request_id: str, request_type: Any, error: BaseException | None) -> None:
        for observer in self.each:
            observer.request_end(request_id, request_type, error)

    def handling(self, request_type: Any, carrier: Any) -> Handling:
        return _AllHandling([o.handling(request_type, carrier) for o in self.each])

    def refused(self, request_type: Any, outcome: str) -> None:
        for observer in self.each:
            observer.refused(request_type, outcome)

    def link_opened(self, address: str, again: bool) -> None:
        for observer in self.each:
            observer.link_opened(address, again)

    def link_closed(self, address: str, error: BaseException | None) -> None:
        for observer in self.each:
            observer.link_closed(address, error)

    def published(self, event: str) -> None:
        for observer in self.each:
            observer.published(event)

    def received(self, event: str) -> None:
        for observer in self.each:
            observer.received(event)


def combine(*observers: Observer | None) -> Observer | None:
    """One observer for the given ones: ``None`` if none, the one, or a fan-out.

    The fan-out calls each in the given order; a request passes through each
    one's :meth:`Observer.request_begin` in turn, and a handler runs in the
    context of the last one whose :class:`Handling` gives one.
    """
    present: list[Observer] = []
    for observer in observers:
        if isinstance(observer, _All):
            present.extend(observer.each)
        elif observer is not None:
            present.append(observer)
    if not present:
        return None
    if len(present) == 1:
        return present[0]
    return _All(tuple(present))
