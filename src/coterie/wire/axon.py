"""axon's message layer over AMP: requests, replies, publishes and status (sans-I/O).

Design: pure functions from values to frame bytes and back, so the
request/response logic can be tested without sockets. The shapes are cote
1.2.0's:

- request: ``[request_object, id]``;
- reply: ``[error_or_null, result..., id]``, the id echoed last;
- publish: ``[topic, data]`` with topic ``message::[namespace::]event``;
- status (to monitors): ``["status", {"id": ..., "nodes": [...]}]``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from coterie.wire.amp import encode_frame

__all__ = [
    "Reply",
    "Request",
    "encode_publish",
    "encode_reply",
    "encode_request",
    "error_payload",
    "parse_reply",
    "parse_request",
    "topic_for",
]


@dataclass(frozen=True, slots=True)
class Request:
    """A request as a responder receives it."""

    body: Any
    id: Any


@dataclass(frozen=True, slots=True)
class Reply:
    """A reply as a requester receives it."""

    error: Any
    results: list[Any]
    id: Any


def encode_request(body: Any, request_id: str) -> bytes:
    """Frame a request: ``[body, id]``."""
    return encode_frame((body, request_id))


def encode_reply(error: Any, result: Any, request_id: Any) -> bytes:
    """Frame a reply: ``[error or null, result, id]``; with an error, no result."""
    if error:
        return encode_frame((error, request_id))
    return encode_frame((None, result, request_id))


def parse_request(args: list[Any]) -> Request | None:
    """Read a request frame; ``None`` when it does not have the shape of one."""
    if len(args) < 2:
        return None
    return Request(args[0], args[-1])


def parse_reply(args: list[Any]) -> Reply | None:
    """Read a reply frame; ``None`` when it does not have the shape of one."""
    if len(args) < 2:
        return None
    return Reply(args[0], args[1:-1], args[-1])


def topic_for(event: str, namespace: str | None) -> str:
    """cote's wire topic for an event: ``message::[namespace::]event``."""
    return f"message::{namespace}::{event}" if namespace else f"message::{event}"


def encode_publish(topic: str, data: Any) -> bytes:
    """Frame a publish: exactly ``[topic, data]``."""
    return encode_frame((topic, data))


def error_payload(exc: BaseException) -> dict[str, str]:
    """What a failed handler sends: an object with ``message`` and ``name``."""
    return {"message": str(exc) or type(exc).__name__, "name": type(exc).__name__}
