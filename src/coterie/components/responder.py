"""Responder: serves requests by type with plain or async handlers.

Design: the responder listens on TCP before it announces itself, so the port
is in its first hello. Each frame is parsed by the sans-I/O axon layer; a
synchronous handler answers inside the read callback (no task). A coroutine
handler is run eagerly, as Python 3.12's eager task factory does but on 3.11
too: it is stepped at once in the read callback, in its own copy of the
context, and answered there if it finishes without waiting; only one that
really waits becomes a task, which takes the coroutine over where it stopped
(:mod:`coterie.components._eager`). Until its first wait such a handler runs
outside any task, like a plain one. Replies to one read leave in one corked
write, in arrival order for every handler that does not wait. The reply
always echoes the request id last.

Beyond cote: the handled types are advertised in ``respondsTo`` so coterie
requesters route only what it serves; a request with no handler gets an error
reply instead of silence; a handler's exception travels as
``{"message", "name"}``, except a :class:`~coterie.RemoteError`, whose
payload travels as it is (cote's ``cb(value)``: a bare string for a Node
caller that prints it); closing says goodbye first, finishes the requests it
holds, then closes its links; it answers liveness pings from its read
callback, so requesters can tell it from a dead host
(:mod:`coterie.protocol.liveness`). The ``__trace`` field a tracing requester
adds (:mod:`coterie.tracing`) is taken out before a handler sees the request.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import logging
import sys
import time
import weakref
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from contextvars import copy_context
from types import CoroutineType
from typing import TYPE_CHECKING, Any, TypeVar, cast, overload

from mypy_extensions import mypyc_attr

from coterie._logbudget import LogBudget
from coterie.components._eager import resume
from coterie.components.listening import ListeningComponent
from coterie.errors import RemoteError
from coterie.observe import Handling, ResponderStats
from coterie.protocol.binding import advert_frame
from coterie.protocol.codes import BAD_REQUEST, CANCELLED, CLOSED, NO_HANDLER, QUEUE_FULL
from coterie.protocol.liveness import ADVERTISED as LIVENESS_ADVERTISED
from coterie.protocol.liveness import bye_frame, pong_frame
from coterie.protocol.messages import (
    BAD_FRAME,
    IGNORED_FRAME,
    PING_FRAME,
    TRACE_FIELD,
    NotARequest,
    decode_request,
    encode_answer,
    encode_refusal,
    error_value,
    no_handler_message,
    split_trace,
)
from coterie.protocol.patterns import best, is_pattern
from coterie.transport.link import Link
from coterie.typed import typed_handler

__all__ = ["DEFAULT_CLOSE_TIMEOUT", "DEFAULT_MAX_QUEUE", "Handler", "Responder"]

log = logging.getLogger("coterie.responder")

Handler = Callable[[dict[str, Any]], Any]

#: Result types that are never awaitable: skip the (slower) awaitable check.
_PLAIN = frozenset({dict, list, str, int, float, bool, type(None)})
#: Any one-argument callable: a typed handler's parameter is a model (coterie.typed).
H = TypeVar("H", bound=Callable[[Any], Any])
#: Seconds ``close`` gives cancelled handlers to finish before their links close.
_CANCEL_GRACE = 1.0
#: Seconds ``close`` waits for requests in progress when nothing else is set.
DEFAULT_CLOSE_TIMEOUT = 10.0
#: Requests that may wait for ``max_concurrent`` when nothing else is set.
DEFAULT_MAX_QUEUE = 100


async def _result(pending: Awaitable[Any]) -> Any:
    return await pending


# Compiled (mypyc), it stays open to subclasses in Python, yours included.
@mypyc_attr(allow_interpreted_subclasses=True)
class Responder(ListeningComponent):
    """Answers requests.

    Args:
        name: Name shown to peers.
        host: Address to listen on.
        port: TCP port; 0 picks a free one.
        advertise_types: Advertise handled types in ``respondsTo``.
        close_timeout: Seconds ``close`` waits for requests in progress.
        max_concurrent: At most this many handlers in progress at once
            (``None``: no cap). Past it requests wait, in arrival order.
        max_queue: At most this many requests wait for the cap; one more is
            refused unrun with code ``queue_full``, and a coterie requester
            sends it to another responder.
        **kwargs: See :class:`~coterie.components.base.Component`.
    """

    role = "rep"
    opposite = "req"

    def __init__(
        self,
        name: str | None = None,
        *,
        host: str = "0.0.0.0",
        port: int = 0,
        advertise_types: bool = True,
        close_timeout: float = DEFAULT_CLOSE_TIMEOUT,
        max_concurrent: int | None = None,
        max_queue: int = DEFAULT_MAX_QUEUE,
        **kwargs: Any,
    ) -> None:
        super().__init__(name, host=host, port=port, **kwargs)
        self.close_timeout = close_timeout
        if max_concurrent is not None and (type(max_concurrent) is not int or max_concurrent < 1):
            raise ValueError(
                f"max_concurrent must be a positive int or None, got {max_concurrent!r}"
            )
        if type(max_queue) is not int or max_queue < 0:
            raise ValueError(f"max_queue must be an int >= 0, got {max_queue!r}")
        self.max_concurrent = max_concurrent
        self.max_queue = max_queue
        #: The cap as a number to compare with: no cap is never reached.
        self._cap = sys.maxsize if max_concurrent is None else max_concurrent
        #: Requests waiting for the cap: (link, frame), in arrival order.
        self._held: deque[tuple[Link, list[Any]]] = deque()
        #: Requests refused unrun because ``max_queue`` were already waiting.
        self.refused_full = 0
        self._handlers: dict[str, Handler] = {}
        #: The names in ``_handlers`` that are patterns (``*``, ``orders::*``, ``**``).
        self._patterns: list[str] = []
        self._advertise_types = advertise_types and "respondsTo" not in self.advertisement
        if self._advertise_types:
            self.advertisement["respondsTo"] = []
        self._tasks: set[asyncio.Task[None]] = set()
        #: Links of coterie requesters (they ping): they get an in-band bye.
        self._pinged: weakref.WeakSet[Link] = weakref.WeakSet()
        self.handled = 0
        #: Handlers that raised (logged at ERROR, rate-limited: see :meth:`_raised`).
        self.handler_errors = 0
        self._errors_log = LogBudget(log, per_second=1.0, burst=10)
        #: Requests that were no object (cote's ``send('a string')``), ignored.
        self.ignored = 0
        self._ignored_log = LogBudget(log, per_second=1.0, burst=5)
        field, value = LIVENESS_ADVERTISED
        self.advertisement[field] = value

    # -- handlers --------------------------------------------------------------

    @overload
    def on(self, request_type: str) -> Callable[[H], H]: ...

    @overload
    def on(self, request_type: str, handler: H) -> H: ...

    def on(self, request_type: str, handler: H | None = None) -> H | Callable[[H], H]:
        """Register the handler for a request type or pattern; usable as a decorator.

        The handler gets the request dict and returns the result, or an
        awaitable of it. Raising sends an error reply. A handler whose first
        parameter is annotated with a msgspec ``Struct`` or a pydantic
        ``BaseModel`` gets a validated instance instead, and a request that
        does not match gets an ``invalid`` error (:mod:`coterie.typed`).

        A ``request_type`` with ``*`` is a pattern, as in cote (EventEmitter2,
        delimiter ``::``): ``"*"`` serves every type without ``::``,
        ``"orders::*"`` that family, ``"**"`` every type. A handler for the
        exact type wins over a pattern, and the most specific pattern over
        the others (:func:`coterie.protocol.patterns.best`). Patterns are
        advertised in ``respondsTo`` as they are.
        """
        if not isinstance(request_type, str) or not request_type:
            raise ValueError("request_type must be a non-empty string")

        def register(fn: H) -> H:
            if not callable(fn):
                raise TypeError(f"handler for {request_type!r} is not callable")
            if request_type not in self._handlers and is_pattern(request_type):
                self._patterns.append(request_type)
            self._handlers[request_type] = typed_handler(request_type, fn)  # decided once
            if self._advertise_types:
                types = self.advertisement["respondsTo"]
                if request_type not in types:
                    types.append(request_type)
                    # Tell requesters at once: coterie ones trust only their link
                    # for what it serves (coterie.protocol.binding), others discovery.
                    for link in list(self._pinged):
                        if link in self._accepted:
                            link.write(advert_frame(self.advertisement))
                    if self.discovery is not None:
                        self.discovery.hello()
            return fn

        return register(handler) if handler is not None else register

    def handler(self, request_type: Any) -> Handler | None:
        """The handler that serves ``request_type`` (its own, else a pattern's), or ``None``."""
        if not isinstance(request_type, str):
            return None
        found = self._handlers.get(request_type)
        if found is None and self._patterns:
            pattern = best(self._patterns, request_type)
            found = self._handlers[pattern] if pattern is not None else None
        return found

    @property
    def types(self) -> list[str]:
        """Request types with a handler."""
        return list(self._handlers)

    @property
    def in_progress(self) -> int:
        """Requests whose coroutine handler is waiting (it went on as a task)."""
        return len(self._tasks)

    def stats(self) -> ResponderStats:
        """What this responder holds now (see :class:`coterie.observe.ResponderStats`)."""
        return ResponderStats(
            **self._listener_fields(), in_progress=len(self._tasks), handled=self.handled
        )

    # -- lifecycle -------------------------------------------------------------

    async def _shutdown(self) -> None:
        # Goodbye first, so requesters stop sending; then finish what we hold.
        # coterie requesters hear it on the link (which no one can forge),
        # everyone else through discovery.
        for link in list(self._pinged):
            if link in self._accepted:
                link.write(bye_frame())
        if self.discovery is not None:
            await self.discovery.close()
        if self._server is not None:
            self._server.close()
        deadline = time.monotonic() + self.close_timeout
        await asyncio.sleep(0.02)  # let requests already on the wire arrive
        while self._tasks and time.monotonic() < deadline:
            await asyncio.wait(set(self._tasks), timeout=max(0.0, deadline - time.monotonic()))
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:  # let cancelled handlers clean up and write their replies
            await asyncio.wait(set(self._tasks), timeout=_CANCEL_GRACE)
        for link in list(self._accepted):
            link.close()

    # -- requests --------------------------------------------------------------

    def _on_frame(self, link: Link, args: list[Any]) -> None:
        request = decode_request(args)
        # The class check first: one pointer compare for the common request.
        if request.__class__ is not dict and isinstance(request, NotARequest):
            self._not_a_request(link, args, request)
            return
        if TYPE_CHECKING:  # what the checks above made sure of, said for mypy only
            assert not isinstance(request, NotARequest)
        request_id = args[-1]
        request_type = request["type"]
        handler = self._handlers.get(request_type) if isinstance(request_type, str) else None
        if handler is None and self._patterns:
            handler = self.handler(request_type)
        if handler is None:
            message = no_handler_message(self.name, request_type)
            self._reply_error(link, request_id, NO_HANDLER, message)
            if self._observer is not None:
                self._observer.refused(request_type, NO_HANDLER)
            return
        if len(self._tasks) >= self._cap:  # at max_concurrent: wait, or refuse unrun
            self._hold(link, args, request_id, request_type)
            return
        if not link.proven:  # a request it serves: this link is not evicted for another
            self._prove(link)
        carrier = None
        if TRACE_FIELD in request:  # only to save a call per request: split_trace decides
            request, carrier = split_trace(request)  # __trace is never for the handler
        observer = self._observer  # metrics, tracing, ...; None when off
        if observer is not None:  # inline, not a method: the hot path with an observer
            call = observer.handling(request_type, carrier)
            context = call.context  # tracing runs the handler with its span current
            try:
                result = handler(request) if context is None else context.run(handler, request)
            # A handler's failure, whatever it is, is logged and goes back to the caller.
            except Exception as exc:  # noqa: BLE001
                self._raised(request_type, exc, link)
                self._reply(link, request_id, error_value(exc), None)
                call.done(exc)
                return
            if type(result) not in _PLAIN and inspect.isawaitable(result):
                self._await(link, request_id, result, context, call, request_type)
            else:
                self._reply(link, request_id, None, result)
                call.done(None)
            return
        try:
            result = handler(request)
        except Exception as exc:  # noqa: BLE001 - the handler's failure goes back to the caller
            self._raised(request_type, exc, link)
            self._reply(link, request_id, error_value(exc), None)
            return
        cls = result.__class__
        if cls is CoroutineType:  # async def: step it here; a task only if it waits
            context = copy_context()
            try:
                waiting = context.run(result.send, None)
            except StopIteration as stop:
                result = stop.value
            # A coroutine handler's failure goes back to the caller.
            except (Exception, asyncio.CancelledError) as exc:  # noqa: BLE001
                self._failed(link, request_id, exc, None, request_type)
                return
            else:
                self._go_on(
                    link, request_id, result, resume(result, waiting), context, None, request_type
                )
                return
        elif cls not in _PLAIN and inspect.isawaitable(result):
            self._await(link, request_id, result, None, None, request_type)
            return
        self._reply(link, request_id, None, result)

    def _await(
        self,
        link: Link,
        request_id: Any,
        pending: Awaitable[Any],
        context: contextvars.Context | None,
        call: Handling | None,
        request_type: str,
    ) -> None:
        """Answer with what a handler's awaitable gives: eagerly when it never waits.

        A coroutine is stepped at once, here in the read callback, in its own
        copy of the context (or the tracing span's context): one that finishes
        without waiting is answered like a plain handler, with no task and in
        the same corked write. Only a coroutine that really waits (or any
        other awaitable) becomes a task, which goes on from where it stopped
        (:mod:`coterie.components._eager`). The path without an observer in
        :meth:`_on_frame` does the same inline.
        """
        if context is None:
            context = copy_context()
        if type(pending) is not CoroutineType:
            self._go_on(link, request_id, None, pending, context, call, request_type)
            return
        coro = cast(Coroutine[Any, Any, Any], pending)
        try:
            waiting = context.run(coro.send, None)
        except StopIteration as stop:
            self._reply(link, request_id, None, stop.value)
            if call is not None:
                call.done(None)
        # A coroutine handler's failure goes back to the caller.
        except (Exception, asyncio.CancelledError) as exc:  # noqa: BLE001
            self._failed(link, request_id, exc, call, request_type)
        else:
            self._go_on(link, request_id, coro, resume(coro, waiting), context, call, request_type)

    def _go_on(
        self,
        link: Link,
        request_id: Any,
        coro: Coroutine[Any, Any, Any] | None,
        pending: Awaitable[Any],
        context: contextvars.Context,
        call: Handling | None,
        request_type: str,
    ) -> None:
        """Make a task of a handler that waits; it replies when it ends."""
        task = asyncio.get_running_loop().create_task(_result(pending), context=context)
        self._tasks.add(task)
        task.add_done_callback(
            functools.partial(self._settle, link, request_id, call, coro, request_type)
        )

    def _hold(self, link: Link, args: list[Any], request_id: Any, request_type: Any) -> None:
        """``max_concurrent`` handlers are in progress: the request waits, or is refused."""
        if len(self._held) < self.max_queue and not self._closing:
            self._held.append((link, args))
            return
        self.refused_full += 1
        message = (
            f"{self.name}: {len(self._tasks)} handler(s) in progress (max_concurrent) and "
            f"{len(self._held)} waiting (max_queue): not run"
        )
        self._reply_error(link, request_id, QUEUE_FULL, message)
        if self._observer is not None:
            self._observer.refused(request_type, QUEUE_FULL)

    def _next_held(self) -> None:
        """A handler ended: start those waiting, in order, while under the cap."""
        held = self._held
        while held and len(self._tasks) < self._cap:
            link, args = held.popleft()
            if self._closing:
                self._reply_error(link, args[-1], CLOSED, f"{self.name} closed: not run")
            elif link.writable:  # its caller is still there
                self._on_frame(link, args)

    def _settle(
        self,
        link: Link,
        request_id: Any,
        call: Handling | None,
        coro: Coroutine[Any, Any, Any] | None,
        request_type: str,
        task: asyncio.Task[Any],
    ) -> None:
        """Reply for a handler that went on as ``task``, however it ended."""
        self._tasks.discard(task)
        if self._held:
            self._next_held()
        if task.cancelled():
            if coro is not None:
                coro.close()  # cancelled before it went on: end it where it waits
            self._failed(link, request_id, asyncio.CancelledError(), call, request_type)
            return
        exc = task.exception()
        if exc is None:
            self._reply(link, request_id, None, task.result())
            if call is not None:
                call.done(None)
        else:
            self._failed(link, request_id, exc, call, request_type)

    def _failed(
        self,
        link: Link,
        request_id: Any,
        exc: BaseException,
        call: Handling | None,
        request_type: str,
    ) -> None:
        if isinstance(exc, Exception):
            self._raised(request_type, exc, link)
            self._reply(link, request_id, error_value(exc), None)
        else:  # cancelled (the responder closed, or the handler cancelled itself)
            self._reply_error(link, request_id, CANCELLED, "responder closed mid-request")
        if call is not None:
            call.done(exc)

    def _not_a_request(self, link: Link, args: list[Any], what: NotARequest) -> None:
        if what is PING_FRAME:
            link.write(pong_frame(args[-1]))  # liveness: answered here, never queued
            if link not in self._pinged:  # a coterie requester: what it serves, on the link
                link.write(advert_frame(self.advertisement))
                self._pinged.add(link)
        elif what is IGNORED_FRAME:  # cote's send('a string'): no reply, as cote
            self.ignored += 1
            self._ignored_log.warning(
                "%s: ignored a request that is not an object (%s) from %s: "
                "send an object with a 'type'",
                self.name,
                type(args[0]).__name__,
                link.peer,
            )
        elif what is BAD_FRAME:
            self._reply_error(link, args[-1], BAD_REQUEST, what.reason)
            if self._observer is not None:
                self._observer.refused(None, BAD_REQUEST)
        else:
            log.debug("dropped frame of %d argument(s) from %s", len(args), link.peer)

    def _reply_error(self, link: Link, request_id: Any, code: str, message: str) -> None:
        """Refuse a request with no handler run: the error carries ``code``."""
        self.handled += 1
        link.write(encode_refusal(code, message, request_id))

    def _raised(self, request_type: str, exc: Exception, link: Link) -> None:
        """A handler raised: ERROR with its traceback, a few a second at most.

        A :class:`~coterie.RemoteError` is the handler's way to answer with
        an error value (cote's ``cb(err)``), not a failure: DEBUG.
        """
        self.handler_errors += 1
        if isinstance(exc, RemoteError):
            log.debug("handler for %r answered with an error: %r", request_type, exc)
            return
        self._errors_log.error(
            "%s: handler for %r raised %s (request from %s)",
            self.name,
            request_type,
            type(exc).__name__,
            link.peer,
            exc_info=exc,
        )

    def _reply(self, link: Link, request_id: Any, error: Any, result: Any) -> None:
        self.handled += 1
        if not link.writable:  # gone, or closed for not reading: encode nothing for nobody
            return
        link.write(encode_answer(error, result, request_id, self.max_frame_size))
