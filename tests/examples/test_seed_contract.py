"""The validator answers seed requests as the seed did; the payment side takes a bare bool."""

from __future__ import annotations

from typing import Any

import pytest

from coterie import RemoteError
from coterie.testing import call
from examples.payment.apps import (
    VERDICT_REQUEST,
    MeshValidation,
    ValidationUnavailable,
    validation_responder,
)

GOOD = "4111111111111111"


async def test_a_seed_request_for_a_valid_card_gets_a_bare_true() -> None:
    responder = validation_responder("v1")
    assert await call(responder, {"type": "validate", "cardno": GOOD}) is True


@pytest.mark.parametrize(
    ("cardno", "reason"),
    [
        ("4111111111111112", "failed the Luhn check"),
        ("123456", "too short (6 digits, at least 8)"),
        (4111, "card number must be a string"),
    ],
)
async def test_a_seed_request_for_a_refused_card_gets_the_reason_as_a_bare_string_error(
    cardno: Any, reason: str
) -> None:
    responder = validation_responder("v1")
    with pytest.raises(RemoteError) as info:
        await call(responder, {"type": "validate", "cardno": cardno})
    assert info.value.payload == reason


async def test_asking_for_the_verdict_gets_the_whole_verdict() -> None:
    responder = validation_responder("v1")
    request = {"type": "validate", "cardno": "4111111111111112", **VERDICT_REQUEST}
    assert await call(responder, request) == {
        "valid": False,
        "reason": "failed the Luhn check",
        "by": "v1",
    }


class _Answers:
    """A stand-in requester that answers with a fixed value and records requests."""

    def __init__(self, answer: Any) -> None:
        self.answer = answer
        self.sent: list[dict[str, Any]] = []

    async def send(self, request: dict[str, Any], timeout: float) -> Any:
        self.sent.append(request)
        return self.answer


@pytest.mark.parametrize(
    ("answer", "verdict"),
    [
        (True, {"valid": True, "reason": None, "by": "validation service"}),
        (False, {"valid": False, "reason": "refused", "by": "validation service"}),
        (
            {"valid": True, "reason": None, "by": "v7"},
            {"valid": True, "reason": None, "by": "v7"},
        ),
    ],
)
async def test_the_payment_side_takes_a_bare_bool_or_a_verdict(answer: Any, verdict: Any) -> None:
    requester = _Answers(answer)
    validate = MeshValidation(requester, 5)  # type: ignore[arg-type]
    assert await validate(GOOD) == verdict
    assert requester.sent == [{"type": "validate", "cardno": GOOD, "answer": "verdict"}]


@pytest.mark.parametrize("answer", [None, 1, "yes", {"ok": True}])
async def test_anything_else_is_still_an_unexpected_answer(answer: Any) -> None:
    with pytest.raises(ValidationUnavailable, match="unexpected answer from validation service"):
        await MeshValidation(_Answers(answer), 5)(GOOD)  # type: ignore[arg-type]
