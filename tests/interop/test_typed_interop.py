"""Typed contracts do not change cote's wire: real Node cote 1.2.0 on both sides.

A Node requester sends the same plain object to a typed Python handler and
gets the same answer an untyped one gives; a request that does not match the
contract gets ``{message, name, code: "invalid"}``. A typed Python call to a
Node responder sends the plain object cote expects and checks the answer.
Node runs only inside the tests' private network namespace (the ``node_peer``
fixture).
"""

from __future__ import annotations

from typing import Any, ClassVar

import msgspec
import pydantic
import pytest

from coterie import Contract, Requester, Responder
from tests.helpers import MS
from tests.interop.conftest import NodePeerFactory
from tests.interop.nodepeer import python_discovery

FIRST_CONTACT = 5_000 * MS


class Validate(msgspec.Struct, Contract[bool]):
    type: ClassVar[str] = "validate"
    cardno: str


class Verdict(msgspec.Struct):
    cardno: str
    valid: bool


class Payment(pydantic.BaseModel, Contract["Receipt"]):
    type: ClassVar[str] = "pay"
    cardno: str
    amount: int


class Receipt(pydantic.BaseModel):
    amount: int
    by: str


@pytest.mark.parametrize("library", ["msgspec", "pydantic"])
async def test_node_requester_gets_the_same_answer_and_the_invalid_error(
    library: str, node_peer: NodePeerFactory
) -> None:
    seen: list[Any] = []
    async with Responder(name="typed validation", discovery=python_discovery()) as responder:
        if library == "msgspec":

            @responder.on("validate")
            def validate(card: Validate) -> Verdict:
                seen.append(card)
                return Verdict(cardno=card.cardno, valid=card.cardno.startswith("4"))

        else:

            @responder.on("validate")
            async def validate_pydantic(payment: Payment) -> dict[str, Any]:
                seen.append(payment)
                return {"cardno": payment.cardno, "valid": payment.cardno.startswith("4")}

        @responder.on("untyped")
        def untyped(req: dict[str, Any]) -> dict[str, Any]:
            return {"cardno": req["cardno"], "valid": req["cardno"].startswith("4")}

        requester = await node_peer("requester", {"name": "node payments"})
        await requester.wait_for("added", timeout=FIRST_CONTACT)
        good = {"cardno": "4111", "amount": 5}
        typed = await requester.request({"type": "validate", **good})
        plain = await requester.request({"type": "untyped", **good})
        bad = await requester.request({"type": "validate", "cardno": 4111, "amount": 5})

    assert typed["err"] is None, typed
    assert typed["res"] == plain["res"] == {"cardno": "4111", "valid": True}
    expected = (
        "$.cardno: expected str, got int"
        if library == "msgspec"
        else "$.cardno: input should be a valid string, got int"
    )
    assert bad["err"] == {"message": expected, "name": "ValidationError", "code": "invalid"}, bad
    assert bad["res"] is None
    assert len(seen) == 1  # the invalid request never reached the handler


async def test_a_typed_python_call_to_a_node_responder(node_peer: NodePeerFactory) -> None:
    responder = await node_peer(
        "responder",
        {
            "name": "node payments",
            "respondsTo": ["pay", "validate"],
            "reply": {"mode": "value", "value": {"amount": 12, "by": "node"}},
        },
    )
    async with Requester(name="typed caller", discovery=python_discovery()) as requester:
        receipt = await requester.call(Payment(cardno="4111", amount=12), timeout=FIRST_CONTACT)
        with pytest.raises(TypeError) as caught:
            await requester.call(Validate(cardno="4111"), timeout=FIRST_CONTACT)

    assert receipt == Receipt(amount=12, by="node")
    request = await responder.wait_for("request", timeout=1_000 * MS)
    assert request["req"] == {"type": "pay", "cardno": "4111", "amount": 12}
    assert str(caught.value) == "the answer is not a bool: $: expected bool, got object"
