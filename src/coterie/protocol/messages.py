"""axon's message layer over AMP: requests, replies, publishes and status (sans-I/O).

Design: pure functions from values to frame bytes, so the request/response
logic can be tested without sockets. Requests and successful replies, the
request path, have encoders specialised for their shape; everything else goes
through :func:`~coterie.protocol.framing.encode_frame`. The shapes are cote 1.2.0's:

- request: ``[request_object, id]``;
- reply: ``[error_or_null, result..., id]``, the id echoed last;
- publish: ``[topic, data]`` with topic ``message::[namespace::]event``;
- status (to monitors): ``["status", {"id": ..., "nodes": [...]}]``.
"""

from __future__ import annotations

from typing import Any

import orjson

from coterie.protocol.framing import encode_arg, encode_frame, frame_length

__all__ = [
    "encode_publish",
    "encode_reply",
    "encode_request",
    "error_payload",
    "topic_for",
]

#: ``0x13`` (three arguments), then ``j:null``: the head of every success reply.
_REPLY_OK_HEAD = b"\x13\x00\x00\x00\x06j:null"
_dumps = orjson.dumps


def _arg(value: Any) -> bytes:
    data = b"s:" + value.encode() if type(value) is str else encode_arg(value)
    return frame_length(len(data)) + data


def encode_request(body: Any, request_id: str) -> bytes:
    """Frame a request: ``[body, id]``.

    Raises:
        TypeError: When the body cannot be serialised as JSON.
    """
    if type(body) is dict:
        try:
            data = b"j:" + _dumps(body)
        except orjson.JSONEncodeError as exc:
            raise TypeError(f"cannot send request as JSON: {exc}") from exc
    else:
        data = encode_arg(body)
    return b"".join((b"\x12", frame_length(len(data)), data, _arg(request_id)))


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


def encode_publish(topic: str, data: Any) -> bytes:
    """Frame a publish: exactly ``[topic, data]``."""
    return encode_frame((topic, data))


def error_payload(exc: BaseException) -> dict[str, str]:
    """What a failed handler sends: an object with ``message`` and ``name``."""
    return {"message": str(exc) or type(exc).__name__, "name": type(exc).__name__}
