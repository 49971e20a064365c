"""Responder: serves requests by type with plain or async handlers.

Design: the responder listens on TCP before it announces itself, so the port
is in its first hello. Each frame is parsed by the sans-I/O axon layer; a
synchronous handler answers inside the read callback (no task), a coroutine
handler gets a task. The reply always echoes the request id last.

Beyond cote: the handled types are advertised in ``respondsTo`` so coterie
requesters route only what it serves; a request with no handler gets an error
reply instead of silence; a handler's exception travels as
``{"message", "name"}``; closing says goodbye first, finishes the requests it
holds, then closes its links; it answers liveness pings from its read
callback, so requesters can tell it from a dead host
(:mod:`coterie.protocol.liveness`).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, overload

from coterie.components.base import ListeningComponent
from coterie.protocol.framing import encode_frame
from coterie.protocol.liveness import ADVERTISED as LIVENESS_ADVERTISED
from coterie.protocol.liveness import PING, pong_frame
from coterie.protocol.messages import encode_reply, error_payload
from coterie.transport.link import Link

__all__ = ["Handler", "Responder"]

log = logging.getLogger("coterie.responder")

Handler = Callable[[dict[str, Any]], Any]

#: Result types that are never awaitable: skip the (slower) awaitable check.
_PLAIN = frozenset({dict, list, str, int, float, bool, type(None)})
H = TypeVar("H", bound=Handler)


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

    # -- lifecycle -------------------------------------------------------------

    async def _shutdown(self) -> None:
        # Goodbye first, so requesters stop sending; then finish what we hold.
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
            return
        if not isinstance(request, dict) or "type" not in request:
            self._reply_error(link, request_id, "BadRequest", "request has no 'type' field")
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
            return
        try:
            result = handler(request)
        except Exception as exc:  # the handler's failure goes back to the caller
            log.debug("handler for %r raised %r", request_type, exc)
            self._reply(link, request_id, error_payload(exc), None)
            return
        if type(result) not in _PLAIN and inspect.isawaitable(result):
            task = asyncio.get_running_loop().create_task(self._finish(link, request_id, result))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        else:
            self._reply(link, request_id, None, result)

    async def _finish(self, link: Link, request_id: Any, pending: Awaitable[Any]) -> None:
        try:
            result = await pending
        except asyncio.CancelledError:
            self._reply_error(link, request_id, "CancelledError", "responder closed mid-request")
            raise
        except Exception as exc:
            log.debug("handler raised %r", exc)
            self._reply(link, request_id, error_payload(exc), None)
            return
        self._reply(link, request_id, None, result)

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
