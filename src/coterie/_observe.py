"""The hooks the request path calls when metrics or tracing are on (internal).

Design: a component holds at most one :class:`RequestHooks` object, ``None``
when neither :mod:`coterie.metrics` nor :mod:`coterie.tracing` is on, so the
request path costs one ``None`` check when they are off. With both on,
:func:`combine` fans every call out to the two.

- A requester calls :meth:`RequestHooks.request_begin` once per request before
  it is framed (tracing adds its context to the request there) and
  :meth:`RequestHooks.request_end` once it is settled, whatever the outcome;
  an end for a request id that has already ended is ignored.
- A responder calls :meth:`RequestHooks.handling` before a handler runs; the
  :class:`Handling` it returns says in which :mod:`contextvars` context to run
  the handler (tracing makes its span current there) and hears
  :meth:`Handling.done` once the reply is written.

:func:`outcome_of` names an outcome for labels and span attributes.
"""

from __future__ import annotations

import asyncio
import contextvars
from typing import Any, Protocol

from coterie.errors import (
    FrameTooLargeError,
    LinkLostError,
    NotRunningError,
    QueueFullError,
    RemoteError,
    RequestTimeoutError,
)

__all__ = ["TRACE_FIELD", "Handling", "RequestHooks", "combine", "outcome_of"]

#: The request field that carries W3C trace context (see :mod:`coterie.tracing`).
TRACE_FIELD = "__trace"

_OUTCOMES: dict[type[BaseException], str] = {
    RemoteError: "error",
    RequestTimeoutError: "timeout",
    LinkLostError: "link_lost",
    QueueFullError: "queue_full",
    NotRunningError: "closed",
    FrameTooLargeError: "too_large",
    asyncio.CancelledError: "cancelled",
}


def outcome_of(error: BaseException | None) -> str:
    """``"ok"`` for no error, else what kind of failure ``error`` is.

    ``error`` (the handler or responder failed), ``timeout``, ``link_lost``,
    ``queue_full``, ``closed``, ``too_large``, ``cancelled``; anything else
    is ``failed``.
    """
    if error is None:
        return "ok"
    outcome = _OUTCOMES.get(type(error))
    if outcome is not None:
        return outcome
    for kind, name in _OUTCOMES.items():
        if isinstance(error, kind):
            return name
    return "failed"


class Handling(Protocol):
    """One request being handled by a responder."""

    #: Run the handler (and create its task) in this context; ``None``: as is.
    context: contextvars.Context | None

    def done(self, error: BaseException | None) -> None:
        """The reply is written: ``error`` is what the handler raised, or ``None``."""


class RequestHooks(Protocol):
    """What requesters and responders call on the request path."""

    def request_begin(self, request: dict[str, Any], request_id: str) -> dict[str, Any]:
        """A request is about to be framed; returns the request to send."""

    def request_end(self, request_id: str, request_type: Any, error: BaseException | None) -> None:
        """The request is settled: answered (``None``), or failed with ``error``."""

    def handling(self, request_type: Any, carrier: Any) -> Handling:
        """A responder is about to run the handler; ``carrier`` is the trace field."""

    def refused(self, request_type: Any, outcome: str) -> None:
        """A responder answered with an error and ran no handler (``no_handler``, ...)."""


class _BothHandling:
    __slots__ = ("context", "first", "second")

    def __init__(self, first: Handling, second: Handling) -> None:
        self.first = first
        self.second = second
        self.context = second.context if second.context is not None else first.context

    def done(self, error: BaseException | None) -> None:
        self.first.done(error)
        self.second.done(error)


class _Both:
    """Two hook objects called in turn (metrics first, then tracing)."""

    __slots__ = ("first", "second")

    def __init__(self, first: RequestHooks, second: RequestHooks) -> None:
        self.first = first
        self.second = second

    def request_begin(self, request: dict[str, Any], request_id: str) -> dict[str, Any]:
        return self.second.request_begin(self.first.request_begin(request, request_id), request_id)

    def request_end(self, request_id: str, request_type: Any, error: BaseException | None) -> None:
        self.first.request_end(request_id, request_type, error)
        self.second.request_end(request_id, request_type, error)

    def handling(self, request_type: Any, carrier: Any) -> Handling:
        return _BothHandling(
            self.first.handling(request_type, carrier), self.second.handling(request_type, carrier)
        )

    def refused(self, request_type: Any, outcome: str) -> None:
        self.first.refused(request_type, outcome)
        self.second.refused(request_type, outcome)


def combine(*hooks: RequestHooks | None) -> RequestHooks | None:
    """The one hook object for the given ones: ``None`` if none, else one or a fan-out."""
    present = [h for h in hooks if h is not None]
    if not present:
        return None
    combined = present[0]
    for more in present[1:]:
        combined = _Both(combined, more)
    return combined
