"""What the Sockend decides about a socket.io client's events and the mesh's publishes (sans-I/O).

Design: the Sockend (:mod:`coterie.gateways.sockend`) is glue between
socket.io and the mesh; every decision about what a client sent or what a
client receives is a pure function here, tested without sockets:

- :func:`request_from` shapes a client's event into the request to forward,
  or raises :class:`Refused`: the event name must be a string and not one
  socket.io reserves, the payload an object (a missing one is ``{}``, as in
  cote) that is JSON of at most ``max_payload`` bytes; the reserved keys a
  client may not set (:data:`RESERVED_KEYS`) are taken out of a copy;
- :func:`failure` names what a client gets when forwarding failed, in the
  one vocabulary of :mod:`coterie.protocol.codes`; :func:`gone` and
  :func:`no_handler` word the two refusals about namespaces;
- :func:`split_rooms` takes the target rooms out of a published event
  (``__room`` and/or ``__rooms``), once each, in order.

A refusal travels as ``{"name": "SockendError", "code": ..., "message": ...}``
(:meth:`Refused.payload`).
"""

from __future__ import annotations

from typing import Any

import orjson

from coterie.protocol.codes import (
    BAD_REQUEST,
    CLOSED,
    GONE,
    NO_HANDLER,
    QUEUE_FULL,
    TIMEOUT,
    TOO_LARGE,
    code_of,
    refusal,
)
from coterie.protocol.messages import SUBSET_FIELD, TIMEOUT_FIELD, without

__all__ = [
    "ERROR_NAME",
    "RESERVED_KEYS",
    "SOCKETIO_RESERVED",
    "Refused",
    "failure",
    "gone",
    "no_handler",
    "request_from",
    "rooms",
    "socketio_namespace",
    "split_rooms",
]

#: Request keys a client may not set; they are removed before forwarding
#: (routing and time bounds are the server's business; transformers may set them).
RESERVED_KEYS = (SUBSET_FIELD, TIMEOUT_FIELD)
#: Event names socket.io reserves; never forwarded nor relayed.
SOCKETIO_RESERVED = frozenset(
    {"connect", "connect_error", "disconnect", "disconnecting", "newListener", "removeListener"}
)
#: The ``name`` of the Sockend's own errors.
ERROR_NAME = "SockendError"


class Refused(Exception):
    """A request the Sockend answers itself, with a code of :mod:`coterie.protocol.codes`.

    Attributes:
        code: The outcome code (``bad_request``, ``no_handler``, ...).
        message: What happened, for the client.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def payload(self) -> dict[str, str]:
        """The error the client's acknowledgement receives."""
        return refusal(self.code, self.message, ERROR_NAME)


def socketio_namespace(namespace: str | None) -> str:
    """The socket.io namespace serving a cote namespace: ``/ns``, or ``/``."""
    return "/" + (namespace or "")


def request_from(event: Any, args: tuple[Any, ...], max_payload: int) -> dict[str, Any]:
    """The request a client's ``emit(event, *args)`` forwards, before transformers run.

    Only the first argument is the payload; more are ignored (the adapter
    may log them). The request's ``type`` is set after the transformers.

    Returns:
        A new dict: the payload without :data:`RESERVED_KEYS`.

    Raises:
        Refused: ``bad_request`` for an event name that is not a string, a
            payload that is not an object or not JSON; ``no_handler`` for an
            event socket.io reserves; ``too_large`` for a payload of more than
            ``max_payload`` bytes of JSON.
    """
    if not isinstance(event, str):
        raise Refused(BAD_REQUEST, f"an event name must be a string, got {type(event).__name__}")
    if event in SOCKETIO_RESERVED:
        raise Refused(NO_HANDLER, f"{event!r} is a reserved socket.io event")
    data = args[0] if args else {}
    if not isinstance(data, dict):
        kind = "null" if data is None else type(data).__name__
        raise Refused(BAD_REQUEST, f"the payload of {event!r} must be an object, got {kind}")
    try:
        size = len(orjson.dumps(data))
    except (TypeError, orjson.JSONEncodeError) as exc:
        raise Refused(BAD_REQUEST, f"the payload of {event!r} is not JSON: {exc}") from None
    if size > max_payload:
        raise Refused(
            TOO_LARGE, f"the payload of {event!r} is {size} bytes; the limit is {max_payload}"
        )
    return without(data, RESERVED_KEYS)


def failure(error: BaseException, event: str, request_timeout: float) -> Refused:
    """What the client gets when forwarding ``event`` failed with ``error``.

    ``error`` is what the Sockend's requester raised, other than a
    :class:`~coterie.RemoteError` (whose payload the client gets as it is);
    its code is :func:`~coterie.protocol.codes.code_of`'s.
    """
    code = code_of(error)
    if code == TIMEOUT:
        return Refused(code, f"no answer to {event!r} within {request_timeout:g} s")
    if code == QUEUE_FULL:
        return Refused(code, "too many requests are waiting for a responder")
    if code == TOO_LARGE:
        return Refused(code, "the request is too large for the mesh")
    if code == BAD_REQUEST:
        return Refused(code, f"the request cannot be sent: {error}")
    if code == CLOSED:
        return Refused(code, "the gateway's requester is not running")
    return Refused(code, f"the request could not be completed: {error}")


def no_handler(event: str, sio_ns: str) -> Refused:
    """No responder of the namespace served on ``sio_ns`` advertises ``event``."""
    return Refused(NO_HANDLER, f"no responder serves {event!r} on {sio_ns}")


def gone(namespace: str | None, sio_ns: str, node_timeout: float) -> Refused:
    """The namespace on ``sio_ns`` was closed: none of its nodes seen for ``node_timeout``."""
    return Refused(
        GONE,
        f"namespace {namespace!r} ({sio_ns}) was closed: none of its responders has been "
        f"seen for {node_timeout:g} s",
    )


def rooms(several: Any, one: Any) -> list[str]:
    """The rooms of ``__rooms`` (a list or one name) and ``__room``, in order, once each.

    Names are strings or integers (as text); anything else is skipped.
    """
    names: list[Any] = []
    if isinstance(several, list | tuple):
        names.extend(several)
    elif several is not None:
        names.append(several)
    if one is not None:
        names.append(one)
    seen: dict[str, None] = {}
    for name in names:
        if isinstance(name, str | int) and not isinstance(name, bool):
            seen.setdefault(str(name), None)
    return list(seen)


def split_rooms(data: Any) -> tuple[Any, list[str] | None]:
    """A published event's data without its target rooms, and the rooms.

    Returns:
        ``(data, None)`` when the data is not an object naming rooms: relay
        to everyone. Else a copy without ``__room`` and ``__rooms``, and the
        rooms (:func:`rooms`); an empty list means no one. Both keys present
        but ``null`` are removed and mean everyone.
    """
    if not isinstance(data, dict) or ("__room" not in data and "__rooms" not in data):
        return data, None
    data = dict(data)
    several, one = data.pop("__rooms", None), data.pop("__room", None)
    if several is None and one is None:
        return data, None
    return data, rooms(several, one)
