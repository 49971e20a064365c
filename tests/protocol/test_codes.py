"""The one vocabulary of outcomes: each error's code, and the refusal payload."""

from __future__ import annotations

import asyncio
import concurrent.futures

import pytest

from coterie.errors import (
    AuthError,
    FrameTooLargeError,
    LinkLostError,
    NotRunningError,
    QueueFullError,
    RemoteError,
    RequestTimeoutError,
    Retryable,
)
from coterie.protocol import codes
from coterie.protocol.codes import CODES, code_of, refusal


class _MyRemote(RemoteError):
    pass


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (None, "ok"),
        (RemoteError({"message": "no", "name": "ValueError"}), "error"),
        (RemoteError({"message": "$.a: field required", "code": "invalid"}), "invalid"),
        (_MyRemote({"message": "$.a: field required", "code": "invalid"}), "invalid"),
        (RemoteError({"message": "x has no handler", "code": "no_handler"}), "error"),
        (_MyRemote("sub"), "error"),
        (RemoteError({"message": "pool full", "code": "retryable"}), "retryable"),
        (Retryable("pool full"), "retryable"),
        (RequestTimeoutError("late"), "timeout"),
        (TimeoutError(), "timeout"),
        (LinkLostError("cut"), "link_lost"),
        (QueueFullError("full"), "queue_full"),
        (NotRunningError("off"), "closed"),
        (FrameTooLargeError("big"), "too_large"),
        (asyncio.CancelledError(), "cancelled"),
        (concurrent.futures.CancelledError(), "cancelled"),
        (TypeError("not JSON"), "bad_request"),
        (ValueError("no type"), "bad_request"),
        (AuthError("tls"), "failed"),
        (RuntimeError("boom"), "failed"),
        (KeyboardInterrupt(), "failed"),
    ],
)
def test_each_error_has_one_code(error: BaseException | None, code: str) -> None:
    assert code_of(error) == code
    assert code in CODES


def test_a_coterie_error_wins_over_the_builtin_it_refines() -> None:
    # FrameTooLargeError is a ValueError, RequestTimeoutError a TimeoutError.
    assert code_of(FrameTooLargeError()) == "too_large"
    assert isinstance(FrameTooLargeError(), ValueError)
    assert code_of(RequestTimeoutError()) == "timeout"

    class Late(RequestTimeoutError):
        pass

    assert code_of(Late()) == "timeout"


def test_the_vocabulary_is_exactly_these_codes() -> None:
    assert {
        "ok",
        "error",
        "retryable",
        "bad_request",
        "no_handler",
        "invalid",
        "too_large",
        "timeout",
        "link_lost",
        "queue_full",
        "closed",
        "cancelled",
        "rejected",
        "gone",
        "failed",
    } == CODES
    constants = {v for k, v in vars(codes).items() if k.isupper() and isinstance(v, str)}
    assert constants == CODES


def test_a_responder_refusal_keeps_its_name_and_gains_the_code() -> None:
    assert refusal("no_handler", "x has no handler") == {
        "message": "x has no handler",
        "name": "NoHandlerError",
        "code": "no_handler",
    }
    assert refusal("bad_request", "m")["name"] == "BadRequest"
    assert refusal("too_large", "m")["name"] == "FrameTooLargeError"
    assert refusal("cancelled", "m")["name"] == "CancelledError"
    assert refusal("invalid", "$.cardno: expected str, got int") == {
        "message": "$.cardno: expected str, got int",
        "name": "ValidationError",
        "code": "invalid",
    }


def test_a_refusal_names_who_refused() -> None:
    assert refusal("queue_full", "wait", "SockendError") == {
        "message": "wait",
        "name": "SockendError",
        "code": "queue_full",
    }
    assert refusal("gone", "closed")["name"] == "CoterieError"


def test_a_code_outside_the_vocabulary_is_refused() -> None:
    with pytest.raises(ValueError, match="'busy' is not an outcome code"):
        refusal("busy", "m")
