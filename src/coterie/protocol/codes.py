"""The one vocabulary of request outcomes: on the wire, in metrics and in traces (sans-I/O).

Design: every way a request can end has one short name, a *code*, and the
same string is used wherever the outcome is told:

- in the ``code`` field of an error that coterie itself answers with, rather
  than a handler (a responder's refusals, the Sockend's errors):
  :func:`refusal` builds that payload;
- as the ``outcome`` label of the request metrics and the
  ``coterie.outcome`` span attribute: :func:`code_of` names the code of an
  exception a request failed with.

| code | the request ... | a Python caller gets |
| --- | --- | --- |
| ``ok`` | was answered | the result |
| ``error`` | reached a handler, which failed (its error as sent) | ``RemoteError`` |
| ``retryable`` | reached handlers, the last of which asked for a retry | ``RemoteError`` |
| ``bad_request`` | is not an object with a ``type``, or not JSON | ``TypeError``, ``ValueError`` |
| ``no_handler`` | has a type nothing here serves | ``RemoteError`` |
| ``invalid`` | does not match its handler's typed contract | ``RemoteError`` |
| ``too_large`` | or its reply exceeds a size limit | ``FrameTooLargeError`` |
| ``timeout`` | got no answer within its bound | ``RequestTimeoutError`` |
| ``link_lost`` | (``retry=False``) lost its link mid-flight | ``LinkLostError`` |
| ``queue_full`` | found too many requests already waiting | ``QueueFullError`` |
| ``closed`` | met a component not running, or closing | ``NotRunningError`` |
| ``cancelled`` | was cancelled: by its caller, or a responder closing | ``CancelledError`` |
| ``rejected`` | was refused by a gateway's transformer | |
| ``gone`` | was sent to a gateway namespace closed for idleness | |
| ``failed`` | failed in any other way | anything else |

The ``name`` of a refusal says who refused, as before the codes existed: a
responder's :data:`RESPONDER_NAMES` (``NoHandlerError``, ...), the Sockend's
``SockendError``. Clients should test ``code``.
"""

from __future__ import annotations

from typing import Final

from coterie.errors import (
    FrameTooLargeError,
    LinkLostError,
    NotRunningError,
    QueueFullError,
    RemoteError,
    RequestTimeoutError,
    Retryable,
)

__all__ = [
    "BAD_REQUEST",
    "CANCELLED",
    "CLOSED",
    "CODES",
    "ERROR",
    "FAILED",
    "GONE",
    "INVALID",
    "LINK_LOST",
    "NO_HANDLER",
    "OK",
    "QUEUE_FULL",
    "REJECTED",
    "RESPONDER_NAMES",
    "RETRYABLE",
    "TIMEOUT",
    "TOO_LARGE",
    "code_of",
    "refusal",
]

OK: Final = "ok"
ERROR: Final = "error"
RETRYABLE: Final = "retryable"
BAD_REQUEST: Final = "bad_request"
NO_HANDLER: Final = "no_handler"
INVALID: Final = "invalid"
TOO_LARGE: Final = "too_large"
TIMEOUT: Final = "timeout"
LINK_LOST: Final = "link_lost"
QUEUE_FULL: Final = "queue_full"
CLOSED: Final = "closed"
CANCELLED: Final = "cancelled"
REJECTED: Final = "rejected"
GONE: Final = "gone"
FAILED: Final = "failed"

#: Every code, and nothing else: metric labels and wire codes come from here.
CODES: Final = frozenset(
    {
        OK,
        ERROR,
        RETRYABLE,
        BAD_REQUEST,
        NO_HANDLER,
        INVALID,
        TOO_LARGE,
        TIMEOUT,
        LINK_LOST,
        QUEUE_FULL,
        CLOSED,
        CANCELLED,
        REJECTED,
        GONE,
        FAILED,
    }
)

#: The ``name`` a responder's refusals carry (kept from before the codes, for callers
#: that test it; a Python caller sees it as ``RemoteError.name``).
RESPONDER_NAMES: Final = {
    BAD_REQUEST: "BadRequest",
    NO_HANDLER: "NoHandlerError",
    INVALID: "ValidationError",
    TOO_LARGE: "FrameTooLargeError",
    CANCELLED: "CancelledError",
}

#: Exception classes and their codes, most specific first (the built-ins the
#: coterie errors refine come last).
_CODES_OF: dict[type[BaseException], str] = {
    RemoteError: ERROR,
    Retryable: RETRYABLE,
    RequestTimeoutError: TIMEOUT,
    LinkLostError: LINK_LOST,
    QueueFullError: QUEUE_FULL,
    NotRunningError: CLOSED,
    FrameTooLargeError: TOO_LARGE,
    TimeoutError: TIMEOUT,
    TypeError: BAD_REQUEST,
    ValueError: BAD_REQUEST,
}


def code_of(error: BaseException | None) -> str:
    """The code of how a request ended: :data:`OK` for ``None``, else the error's kind.

    A coterie error has its own code (see the module's table); an
    ``asyncio.CancelledError`` (told by its class name: this module imports no
    asyncio) is :data:`CANCELLED`; a plain ``TimeoutError`` is
    :data:`TIMEOUT`; a ``TypeError`` or ``ValueError`` (the request could not
    be framed) is :data:`BAD_REQUEST`; anything else is :data:`FAILED`. A
    ``RemoteError`` is :data:`ERROR`, or :data:`INVALID` when a typed handler's
    contract refused the request, or :data:`RETRYABLE` when the last handler
    tried asked for another try (its ``code`` says so).
    """
    if error is None:
        return OK
    code = _CODES_OF.get(type(error))
    if code is None:
        if type(error).__name__ == "CancelledError":
            return CANCELLED
        code = next((c for kind, c in _CODES_OF.items() if isinstance(error, kind)), FAILED)
    if code == ERROR and getattr(error, "code", None) in (INVALID, RETRYABLE):
        return error.code  # type: ignore[attr-defined, no-any-return]
    return code


def refusal(code: str, message: str, name: str | None = None) -> dict[str, str]:
    """The error payload of a request that coterie refuses itself, with no handler run.

    Args:
        code: One of :data:`CODES`.
        message: What happened, for people.
        name: Who refused (``"SockendError"``, ...); defaults to the
            responder's name for ``code`` (:data:`RESPONDER_NAMES`), else
            ``"CoterieError"``.

    Raises:
        ValueError: When ``code`` is not in the vocabulary.
    """
    if code not in CODES:
        raise ValueError(f"{code!r} is not an outcome code; use one of {sorted(CODES)}")
    if name is None:
        name = RESPONDER_NAMES.get(code, "CoterieError")
    return {"message": message, "name": name, "code": code}
