"""Responder: serves requests by type with plain or async handlers.

Design: the responder listens on TCP before it announces itself, so the port
is in its first hello. Each frame is parsed by the sans-I/O axon layer; a
synchronous handler answers inside the read callback (no task), a coroutine
handler gets a task. The reply always echoes the request id last.

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
import inspect
import logging
import time
import weakref
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, overload

from coterie._observe import TRACE_FIELD, Handling
from coterie.components.base import ListeningComponent
from coterie.errors import RemoteError
from coterie.protocol.framing import encode_frame
from coterie.protocol.liveness import ADVERTISED as LIVENESS_ADVERTISED
from coterie.protocol.liveness import PING, bye_frame, pong_frame
from coterie.protocol.messages import encode_reply, error_payload
from coterie.transport.link import Link

__all__ = ["Handler", "Responder"]

log = logging.getLogger("coterie.responder")

Handler = Callable[[dict[str, Any]], Any]

#: Result types that are never awaitable: skip the (slower) awaitable check.
_PLAIN = frozenset({dict, list, str, int, float, bool, type(None)})
H = TypeVar("H", bound=Handler)


def _error_value(exc: Exception) -> Any:
    """The error a failed handler sends: a RemoteError's own payload, else ``{message, name}``."""
    if isinstance(exc, RemoteError) and exc.payload:  # a falsy error would read as success
        return exc.payload
    return error_payload(exc)


class Responder(ListeningComponent):
    """Answers requests.

    Args:
        name: Name shown to peers.
        host: Address to listen on.
        port: TCP port; 0 picks a free one.
        advertise_types: Advertise handled types in ``respondsTo``.
        close_timeout: Seconds ``close`` waits for requests in progress.
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
        close_timeout: float = 10.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(name, host=host, port=port, **kwargs)
        self.close_timeout = close_timeout
        self._handlers: dict[str, Handler] = {}
        self._advertise_types = advertise_types and "respondsTo" not in self.advertisement
        if self._advertise_types:
            self.advertisement["respondsTo"] = []
        self._tasks: set[asyncio.Task[None]] = set()
        #: Links of coterie requesters (they ping): they get an in-band bye.
        self._pinged: weakref.WeakSet[Link] = weakref.WeakSet()
        self.handled = 0
        field, value = LIVENESS_ADVERTISED
        self.advertisement[field] = value

    # -- handlers --------------------------------------------------------------

    @overload
    def on(self, request_type: str) -> Callable[[H], H]: ...

    @overload
    def on(self, request_type: str, handler: H) -> H: ...

    def on(self, request_type: str, handler: H | None = None) -> H | Callable[[H], H]:
        """Register the handler for a request type; usable as a decorator.

        The handler gets the request dict and returns the result, or an
        awaitable of it. Raising sends an error reply.
        """
        if not isinstance(request_type, str) or not request_type:
            raise ValueError("request_type must be a non-empty string")

        def register(fn: H) -> H:
            if not callable(fn):
                raise TypeError(f"handler for {request_type!r} is not callable")
            self._handlers[request_type] = fn
            if self._advertise_types:
                types = self.advertisement["respondsTo"]
                if request_type not in types:
                    types.append(request_type)
                    if self.discovery is not None:
                        self.discovery.hello()  # tell requesters at once
            return fn

        return register(handler) if handler is not None else register

    def handler(self, request_type: Any) -> Handler | None:
        """The handler registered for ``request_type``, or ``None``."""
        return self._handlers.get(request_type) if isinstance(request_type, str) else None

    @property
    def types(self) -> list[str]:
        """Request types with a handler."""
        return list(self._handlers)

    @property
    def in_progress(self) -> int:
        """Requests whose coroutine handler is still running."""
        return len(self._tasks)

    # -- lifecycle -------------------------------------------------------------

    async def _shutdown(self) -> None:
        # Goodbye first, so requesters stop sending; then finish what we hold.
        # coterie requesters hear it on the link (which no one can forge),
        # everyone else through discovery.
        for link in list(self._pinged):
            if link in self._links:
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
        for link in list(self._links):
            link.close()

    # -- requests --------------------------------------------------------------

    def _on_frame(self, link: Link, args: list[Any]) -> None:
        if len(args) < 2:
            log.debug("dropped frame of %d argument(s) from %s", len(args), link.peer)
            return
        request, request_id = args[0], args[-1]
        if request.__class__ is str and request == PING:
            link.write(pong_frame(request_id))  # liveness: answered here, never queued
            self._pinged.add(link)
            return
        if not isinstance(request, dict) or "type" not in request:
            self._reply_error(link, request_id, "BadRequest", "request has no 'type' field")
            if self._hooks is not None:
                self._hooks.refused(None, "bad_request")
            return
        request_type = request["type"]
        handler = self._handlers.get(request_type) if isinstance(request_type, str) else None
        if handler is None:
            self._reply_error(
                link,
                request_id,
                "NoHandlerError",
                f"{self.name} has no handler for request type {request_type!r}",
            )
            if self._hooks is not None:
                self._hooks.refused(request_type, "no_handler")
            return
        hooks = self._hooks  # metrics and tracing; None when off
        if hooks is not None:  # inline, not a method: this is the hot path with hooks on
            carrier = None
            if TRACE_FIELD in request:
                request = dict(request)
                carrier = request.pop(TRACE_FIELD)
            call = hooks.handling(request_type, carrier)
            context = call.context  # tracing runs the handler with its span current
            try:
                result = handler(request) if context is None else context.run(handler, request)
            except Exception as exc:
                log.debug("handler for %r raised %r", request_type, exc)
                self._reply(link, request_id, _error_value(exc), None)
                call.done(exc)
                return
            if type(result) not in _PLAIN and inspect.isawaitable(result):
                task = asyncio.get_running_loop().create_task(
                    self._finish(link, request_id, result, call), context=context
                )
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            else:
                self._reply(link, request_id, None, result)
                call.done(None)
            return
        if TRACE_FIELD in request:  # a caller's trace context, never for the handler
            request = {k: v for k, v in request.items() if k != TRACE_FIELD}
        try:
            result = handler(request)
        except Exception as exc:  # the handler's failure goes back to the caller
            log.debug("handler for %r raised %r", request_type, exc)
            self._reply(link, request_id, _error_value(exc), None)
            return
        if type(result) not in _PLAIN and inspect.isawaitable(result):
            task = asyncio.get_running_loop().create_task(self._finish(link, request_id, result))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        else:
            self._reply(link, request_id, None, result)

    async def _finish(
        self, link: Link, request_id: Any, pending: Awaitable[Any], call: Handling | None = None
    ) -> None:
        try:
            result = await pending
        except asyncio.CancelledError:
            self._reply_error(link, request_id, "CancelledError", "responder closed mid-request")
            if call is not None:
                call.done(asyncio.CancelledError())
            raise
        except Exception as exc:
            log.debug("handler raised %r", exc)
            self._reply(link, request_id, _error_value(exc), None)
            if call is not None:
                call.done(exc)
            return
        self._reply(link, request_id, None, result)
        if call is not None:
            call.done(None)

    def _reply_error(self, link: Link, request_id: Any, name: str, message: str) -> None:
        self._reply(link, request_id, {"message": message, "name": name}, None)

    def _reply(self, link: Link, request_id: Any, error: Any, result: Any) -> None:
        self.handled += 1
        try:
            frame = encode_reply(error, result, request_id)
        except (TypeError, ValueError) as exc:
            frame = encode_frame(
                ({"message": f"result could not be sent: {exc}", "name": "TypeError"}, request_id)
            )
        if len(frame) > self.max_frame_size:
            frame = encode_frame(
                (
                    {
                        "message": f"reply of {len(frame)} bytes exceeds max_frame_size="
                        f"{self.max_frame_size}",
                        "name": "FrameTooLargeError",
                    },
                    request_id,
                )
            )
        link.write(frame)
