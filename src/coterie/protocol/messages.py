"""axon's message layer over AMP: requests, replies, publishes and status (sans-I/O).

Design: pure functions from values to frame bytes, so the request/response
logic can be tested without sockets. Requests and successful replies, the
request path, have encoders specialised for their shape; everything else goes
through :func:`~coterie.protocol.framing.encode_frame`. The shapes are cote 1.2.0's:

- request: ``[request_object, id]``;
- reply: ``[error_or_null, result..., id]``, the id echoed last;
- publish: ``[topic, data]`` with topic ``message::[namespace::]event``;
- status (to monitors): ``["status", {"id": ..., "nodes": [...]}]``, whose
  rules, both sides, live in :mod:`coterie.protocol.status`.

The decode side is here too, for the frames a responder reads:
:func:`decode_request` tells a request from a liveness ping and from a bad
frame, and the *reserved* request fields, which steer coterie and are not for
a handler, are split from the payload here and nowhere else:

- ``__subset`` routes to responders advertising that subset; the requester
  takes it out before sending (:func:`split_request`), as cote does;
- ``__timeout`` is cote's per-request bound in milliseconds; it stays in the
  payload (cote sends it too) and :func:`split_request` reads it;
- ``__trace`` carries a tracing requester's W3C trace context; the responder
  takes it out before a handler sees the request (:func:`split_trace`).

The frame size rule is checked once, by the encoders themselves: a request
or publish larger than ``max_size`` raises
:class:`~coterie.errors.FrameTooLargeError`, and a reply too large (or that
cannot be serialised) becomes an error reply (:func:`encode_answer`).

A request that does not match a typed handler's contract (:mod:`coterie.typed`)
is refused with an ``invalid`` error whose message names each field's path and
what was expected (:func:`invalid_refusal`); the adapters for msgspec and
pydantic only translate their library's errors into ``(path, problem)`` pairs.

These functions are on the request path: they return the caller's own dict
when there is nothing to take out, and plain values or tuples, never new
classes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import orjson

from coterie.errors import FrameTooLargeError, RemoteError, Retryable
from coterie.protocol.codes import INVALID, RETRYABLE, TOO_LARGE, refusal
from coterie.protocol.framing import DEFAULT_MAX_FRAME_SIZE, encode_arg, encode_frame, frame_length
from coterie.protocol.liveness import PING

__all__ = [
    "BAD_FRAME",
    "IGNORED_FRAME",
    "MAX_PROBLEMS",
    "PING_FRAME",
    "RESERVED_FIELDS",
    "SHORT_FRAME",
    "SUBSET_FIELD",
    "TIMEOUT_FIELD",
    "TRACE_FIELD",
    "NotARequest",
    "check_size",
    "decode_request",
    "encode_answer",
    "encode_publish",
    "encode_refusal",
    "encode_reply",
    "encode_request",
    "error_payload",
    "error_value",
    "field_path",
    "invalid_refusal",
    "json_kind",
    "no_handler_message",
    "split_request",
    "split_trace",
    "topic_for",
    "without",
]

#: Routes a request to responders advertising this ``subset``; not sent.
SUBSET_FIELD = "__subset"
#: cote's per-request bound, in milliseconds; sent as it is.
TIMEOUT_FIELD = "__timeout"
#: W3C trace context of a tracing requester (see :mod:`coterie.tracing`); never
#: given to a handler.
TRACE_FIELD = "__trace"
#: Every request field that steers coterie rather than the handler.
RESERVED_FIELDS = (SUBSET_FIELD, TIMEOUT_FIELD, TRACE_FIELD)

#: ``0x13`` (three arguments), then ``j:null``: the head of every success reply.
_REPLY_OK_HEAD = b"\x13\x00\x00\x00\x06j:null"
_dumps = orjson.dumps


def _arg(value: Any) -> bytes:
    data = b"s:" + value.encode() if type(value) is str else encode_arg(value)
    return frame_length(len(data)) + data


def check_size(frame: bytes, max_size: int, what: str) -> bytes:
    """The frame size rule for what this side sends: ``frame`` if it fits, else an error.

    Raises:
        FrameTooLargeError: When ``frame`` is longer than ``max_size`` bytes;
            the message names ``what`` was too large and by how much.
    """
    if len(frame) > max_size:
        raise FrameTooLargeError(
            f"{what} of {len(frame)} bytes exceeds max_frame_size={max_size}: "
            "send less, or raise max_frame_size on both sides"
        )
    return frame


def encode_request(body: Any, request_id: str, max_size: int = DEFAULT_MAX_FRAME_SIZE) -> bytes:
    """Frame a request: ``[body, id]``.

    Raises:
        TypeError: When the body cannot be serialised as JSON.
        FrameTooLargeError: When the frame exceeds ``max_size`` bytes.
    """
    if type(body) is dict:
        try:
            data = b"j:" + _dumps(body)
        except orjson.JSONEncodeError as exc:
            raise TypeError(f"cannot send request as JSON: {exc}") from exc
    else:
        data = encode_arg(body)
    frame = b"".join((b"\x12", frame_length(len(data)), data, _arg(request_id)))
    return frame if len(frame) <= max_size else check_size(frame, max_size, "request")


def encode_reply(error: Any, result: Any, request_id: Any) -> bytes:
    """Frame a reply: ``[error, id]`` with an error, else ``[null, result, id]``.

    Raises:
        TypeError: When a value cannot be serialised as JSON.
    """
    if error:
        return encode_frame((error, request_id))
    return b"".join((_REPLY_OK_HEAD, _arg(result), _arg(request_id)))


def topic_for(event: str, namespace: str | None) -> str:
    """The wire topic of an event: ``message::[namespace::]event``, as cote builds it."""
    return f"message::{namespace}::{event}" if namespace else f"message::{event}"


def encode_publish(topic: str, data: Any, max_size: int = DEFAULT_MAX_FRAME_SIZE) -> bytes:
    """Frame a publish: exactly ``[topic, data]``.

    Raises:
        TypeError: When ``data`` cannot be serialised as JSON.
        FrameTooLargeError: When the frame exceeds ``max_size`` bytes.
    """
    return check_size(encode_frame((topic, data)), max_size, "event")


def encode_refusal(code: str, message: str, request_id: Any) -> bytes:
    """Frame a responder's refusal, no handler run: ``[refusal, id]``.

    The error is :func:`~coterie.protocol.codes.refusal`'s payload for ``code``.
    """
    return encode_frame((refusal(code, message), request_id))


def no_handler_message(responder: str, request_type: Any) -> str:
    """What a caller reads when ``responder`` has no handler for ``request_type``."""
    return f"{responder} has no handler for request type {request_type!r}"


def encode_answer(error: Any, result: Any, request_id: Any, max_size: int) -> bytes:
    """Frame a responder's reply so that it can always be sent.

    Like :func:`encode_reply`, except that a result or error that cannot be
    serialised becomes a ``TypeError`` error reply, and a reply larger than
    ``max_size`` bytes a ``too_large`` refusal: the caller gets an answer
    rather than waiting out its bound.
    """
    try:
        frame = encode_reply(error, result, request_id)
    except (TypeError, ValueError) as exc:
        frame = encode_frame(
            ({"message": f"result could not be sent: {exc}", "name": "TypeError"}, request_id)
        )
    if len(frame) <= max_size:
        return frame
    return encode_refusal(
        TOO_LARGE, f"reply of {len(frame)} bytes exceeds max_frame_size={max_size}", request_id
    )


def error_payload(exc: BaseException) -> dict[str, str]:
    """What a failed handler sends: an object with ``message`` and ``name``."""
    return {"message": str(exc) or type(exc).__name__, "name": type(exc).__name__}


def error_value(exc: BaseException) -> Any:
    """The error value a handler that raised ``exc`` answers with.

    A :class:`~coterie.errors.RemoteError` sends its own payload as it is
    (cote's ``cb(value)``: a bare string for a Node caller that prints it),
    unless that payload is falsy, which would read as success; a
    :class:`~coterie.errors.Retryable` sends :func:`error_payload` with
    ``code: "retryable"`` (a coterie requester then tries another
    responder); anything else sends :func:`error_payload`.
    """
    if isinstance(exc, RemoteError) and exc.payload:
        return exc.payload
    payload = error_payload(exc)
    if isinstance(exc, Retryable):
        payload["code"] = RETRYABLE
    return payload


#: At most this many problems are listed in one ``invalid`` error.
MAX_PROBLEMS = 10
#: JSON's names for what a decoded request can hold (``bool`` before ``int``).
_JSON_KINDS: dict[type, str] = {
    dict: "object",
    list: "array",
    str: "str",
    bool: "bool",
    int: "int",
    float: "float",
    type(None): "null",
}


def json_kind(value: Any) -> str:
    """The JSON kind of a decoded value, as an ``invalid`` error names it.

    ``"object"``, ``"array"``, ``"null"``, ``"str"``, ``"int"``, ``"float"``
    or ``"bool"`` (msgspec's words); any other value by its class name.
    """
    return _JSON_KINDS.get(type(value)) or type(value).__name__


def field_path(location: Sequence[str | int]) -> str:
    """A field's path from the request's root: ``("items", 0, "x")`` is ``$.items[0].x``."""
    return "$" + "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in location)


def invalid_refusal(problems: Iterable[tuple[str, str]]) -> dict[str, str]:
    """The error a request gets when it does not match its handler's contract.

    Args:
        problems: ``(path, what)`` pairs, such as
            ``("$.cardno", "expected str, got int")``; the first
            :data:`MAX_PROBLEMS` are listed.

    Returns:
        ``{"message", "name": "ValidationError", "code": "invalid"}``, the
        message ``"$.cardno: expected str, got int"`` with problems joined by
        ``"; "``.
    """
    listed = [f"{path}: {what}" for path, what in problems]
    more = len(listed) - MAX_PROBLEMS
    message = "; ".join(listed[:MAX_PROBLEMS]) or "$: does not match the contract"
    if more > 0:
        message += f"; and {more} more"
    return refusal(INVALID, message)


# -- the decode side ---------------------------------------------------------------


class NotARequest:
    """What :func:`decode_request` returns for a frame that is not a request.

    There are four, compared by identity: :data:`PING_FRAME`,
    :data:`BAD_FRAME`, :data:`IGNORED_FRAME` and :data:`SHORT_FRAME`.

    Attributes:
        kind: ``"ping"``, ``"bad"``, ``"ignored"`` or ``"short"``.
        reason: What is wrong, for the error reply or a log line.
    """

    __slots__ = ("kind", "reason")

    def __init__(self, kind: str, reason: str) -> None:
        self.kind = kind
        self.reason = reason

    def __repr__(self) -> str:
        return f"<{self.kind} frame>"


#: A liveness ping ``[PING, token]``: answer it with a pong echoing ``args[-1]``.
PING_FRAME = NotARequest("ping", "a liveness ping")
#: An object without a ``type``: answer ``args[-1]`` with a ``bad_request`` refusal
#: (beyond cote, which ignores it: the caller learns at once what to change).
BAD_FRAME = NotARequest("bad", "a request must be an object with a 'type' field")
#: A first argument that is no object (a string, a number, a list, null), as
#: cote's ``send('a string')`` sends: ignored with no reply, as cote ignores it.
IGNORED_FRAME = NotARequest("ignored", "a request that is not an object: ignored, as cote does")
#: Fewer than two arguments: there is no id to answer; drop it.
SHORT_FRAME = NotARequest("short", "a request frame has at least two arguments")


def decode_request(args: list[Any]) -> dict[str, Any] | NotARequest:
    """What a frame a responder received is: the request object, or why it is none.

    A request frame is ``[request, ..., id]``: the request object first, its
    id last (the responder echoes ``args[-1]``).

    Returns:
        The request dict itself (not a copy) when it is an object with a
        ``type``; else :data:`PING_FRAME`, :data:`BAD_FRAME` (an object
        without a ``type``), :data:`IGNORED_FRAME` (no object at all) or
        :data:`SHORT_FRAME`.
    """
    if len(args) < 2:
        return SHORT_FRAME
    request = args[0]
    if request.__class__ is dict:  # what the decoder makes: the fast path
        return request if "type" in request else BAD_FRAME
    if request.__class__ is str and request == PING:
        return PING_FRAME
    if isinstance(request, dict):
        return request if "type" in request else BAD_FRAME
    return IGNORED_FRAME


def split_request(request: dict[str, Any]) -> tuple[dict[str, Any], Any, float | None]:
    """A requester's request split into what is sent, its subset and its own bound.

    Returns:
        ``(payload, subset, timeout)``: ``payload`` is ``request`` itself, or a
        copy without ``__subset`` when it has one; ``subset`` is that field's
        value or ``None``; ``timeout`` is ``__timeout`` in seconds when it is a
        positive number of milliseconds, else ``None``. ``__timeout`` stays in
        the payload, as cote sends it.
    """
    subset = None
    if SUBSET_FIELD in request:
        request = dict(request)
        subset = request.pop(SUBSET_FIELD)
    wire = request.get(TIMEOUT_FIELD)
    if wire is not None and wire.__class__ in (int, float) and wire > 0:
        return request, subset, wire / 1000
    return request, subset, None


def split_trace(request: dict[str, Any]) -> tuple[dict[str, Any], Any]:
    """A received request split into what the handler sees and its trace context.

    Returns:
        ``(request, carrier)``: ``request`` itself and ``None`` when it has no
        ``__trace``; else a copy without it, and its value.
    """
    if TRACE_FIELD not in request:
        return request, None
    request = dict(request)
    return request, request.pop(TRACE_FIELD)


def without(request: dict[str, Any], fields: tuple[str, ...] = RESERVED_FIELDS) -> dict[str, Any]:
    """A copy of ``request`` without ``fields`` (every reserved field by default).

    A gateway uses it on what a client sent, so the client steers no routing,
    bound or trace; the copy is the gateway's own to change.
    """
    return {k: v for k, v in request.items() if k not in fields}
