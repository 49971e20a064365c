"""The exceptions coterie raises.

Design: every error a caller can meet derives from :class:`CoterieError`, and
each also derives from the built-in it refines, so generic handlers keep
working. The whole hierarchy, as websockets draws its own::

    CoterieError
    ├── FrameTooLargeError (ValueError)  an outgoing message exceeds max_frame_size
    ├── RequestTimeoutError (TimeoutError)  no answer within the request's bound
    ├── LinkLostError (ConnectionError)  retry=False and the link was lost mid-flight
    ├── QueueFullError (RuntimeError)    too many requests already wait
    ├── NotRunningError (RuntimeError)   the component is not started, or closing
    ├── RemoteError                      the responder's handler failed
    ├── Retryable                        raised by a handler: try another responder
    │
    │   never raised to a caller: the adapters catch them, log and carry on
    ├── ProtocolError (ValueError)       a peer's bytes broke the framing; the link closes
    ├── DecodeError (ValueError)         a discovery datagram could not be read; dropped
    └── AuthError (ConnectionError)      a peer failed TLS verification; retried later

The first six are what ``Requester.send``, ``Publisher.publish`` and the
components' ``start`` raise; they are exported by :mod:`coterie`. The last
three are signals between the sans-I/O protocol and its adapters: a link
that breaks the framing is closed, a datagram that cannot be read is
dropped, a peer that fails TLS is logged and retried. A caller never meets
them, so :mod:`coterie` does not export them; they are here for the adapters
and for tests of the protocol. Errors of one gateway live with it
(:class:`coterie.gateways.nginx.NginxError`).

"Whose fault" (after h11): :class:`ProtocolError`, :class:`DecodeError` and
:class:`AuthError` blame the peer; :class:`FrameTooLargeError`,
:class:`QueueFullError` and :class:`NotRunningError` blame the caller;
:class:`RemoteError` carries the remote handler's own error.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "AuthError",
    "CoterieError",
    "DecodeError",
    "FrameTooLargeError",
    "LinkLostError",
    "NotRunningError",
    "ProtocolError",
    "QueueFullError",
    "RemoteError",
    "RequestTimeoutError",
    "Retryable",
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


class AuthError(CoterieError, ConnectionError):
    """The peer failed TLS verification (wrong CA, or not the service it announced)."""


class QueueFullError(CoterieError, RuntimeError):
    """Too many requests already wait for a responder; this one was refused."""


class NotRunningError(CoterieError, RuntimeError):
    """The component is not started, or is closing: use ``async with`` or ``start()``."""


class RemoteError(CoterieError):
    """The responder's handler failed; carries what it sent back.

    ``str()`` is ``"<name>: <message>"`` when the responder sent the
    exception's name (coterie and cote both do for thrown errors), so a
    ``KeyError('cardno')`` on the responder reads ``KeyError: 'cardno'`` here.

    Attributes:
        message: The error's message.
        name: The error's class name on the responder side, when known.
        code: The outcome code of an error coterie answered itself rather than
            a handler (``"invalid"``, ``"no_handler"``, ...: see
            :mod:`coterie.protocol.codes`), when the payload has one.
        payload: The error value exactly as it arrived.
    """

    def __init__(self, payload: Any) -> None:
        self.payload = payload
        if isinstance(payload, dict):
            self.message = str(payload.get("message", "") or payload)
            name = payload.get("name")
            self.name: str | None = str(name) if name is not None else None
            code = payload.get("code")
            self.code: str | None = code if isinstance(code, str) else None
        else:
            self.message = str(payload)
            self.name = None
            self.code = None
        # "KeyError: 'cardno'", not "'cardno'": the remote exception's name says what failed.
        shown = self.message
        if self.name and self.name != self.message:
            shown = f"{self.name}: {self.message}" if self.message else self.name
        super().__init__(shown)

    def __repr__(self) -> str:
        return f"RemoteError(name={self.name!r}, message={self.message!r})"


class Retryable(CoterieError):
    """Raised by a handler: this failure is transient, try the request on another responder.

    The handler did run (unlike a ``queue_full`` refusal), so retrying is its
    explicit opt-in: the responder answers with an error carrying
    ``code: "retryable"`` (a Node cote handler can send the same with
    ``cb({message, name, code: "retryable"})``), and a coterie requester
    sends the request to another responder within the request's bound, with
    back-off between tries, never to the same one twice in a row. When the
    bound is spent the caller gets the last such error, a
    :class:`RemoteError` whose ``code`` is ``"retryable"``.

    Args:
        message: What went wrong, for people (sent to the caller).
    """
