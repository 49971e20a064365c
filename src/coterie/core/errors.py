"""The exceptions coterie raises.

Design: every error a caller can meet is a subclass of :class:`CoterieError`,
and each also derives from the built-in it refines (``TimeoutError``,
``ConnectionError``, ``ValueError``) so generic handlers keep working.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "CoterieError",
    "DecodeError",
    "FrameTooLargeError",
    "LinkLostError",
    "ProtocolError",
    "QueueFullError",
    "RemoteError",
    "RequestTimeoutError",
]


class CoterieError(Exception):
    """Base class of coterie's own errors."""


class ProtocolError(CoterieError, ValueError):
    """Bytes from a peer broke the protocol so badly the link must close."""


class DecodeError(CoterieError, ValueError):
    """A discovery datagram could not be decrypted or parsed."""


class FrameTooLargeError(CoterieError, ValueError):
    """An outgoing message exceeds the frame size limit."""


class RequestTimeoutError(CoterieError, TimeoutError):
    """No reply arrived within the request's bound; the request was withdrawn."""


class LinkLostError(CoterieError, ConnectionError):
    """The link carrying a request that must not run twice was lost mid-flight."""


class QueueFullError(CoterieError, RuntimeError):
    """Too many requests already wait for a responder; this one was refused."""


class RemoteError(CoterieError):
    """The responder's handler failed; carries what it sent back.

    Attributes:
        message: The error's message.
        name: The error's class name on the responder side, when known.
        payload: The error value exactly as it arrived.
    """

    def __init__(self, payload: Any) -> None:
        self.payload = payload
        if isinstance(payload, dict):
            self.message = str(payload.get("message", "") or payload)
            name = payload.get("name")
            self.name: str | None = str(name) if name is not None else None
        else:
            self.message = str(payload)
            self.name = None
        super().__init__(self.message)

    def __repr__(self) -> str:
        return f"RemoteError(name={self.name!r}, message={self.message!r})"
