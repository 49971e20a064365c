"""What mypy infers for typed calls; checked by tests/test_typed_calls.py, never run.

Each ``reveal_type`` line's note is asserted there, so a change to
``Requester.call``'s signature that loses a type turns that test red.
"""

from __future__ import annotations

from typing import Any, ClassVar, reveal_type

import msgspec
import pydantic

import coterie.sync
from coterie import Contract, Requester


class Validate(msgspec.Struct, Contract[bool]):
    type: ClassVar[str] = "validate"
    cardno: str


class Receipt(msgspec.Struct):
    total: int


class Order(pydantic.BaseModel, Contract[Receipt]):
    type: ClassVar[str] = "order"
    skus: list[str]


class Untyped(msgspec.Struct):
    type: ClassVar[str] = "untyped"


async def calls(requester: Requester) -> None:
    ok: bool = await requester.call(Validate(cardno="4111"))
    reveal_type(await requester.call(Validate(cardno="4111")))
    reveal_type(await requester.call(Order(skus=["a"])))
    reveal_type(await requester.call({"type": "validate", "cardno": "4111"}, returns=bool))
    reveal_type(await requester.call(Validate(cardno="4111"), returns=int))
    reveal_type(await requester.call({"type": "validate", "cardno": "4111"}))
    reveal_type(await requester.call(Untyped(), returns=list[int]))
    reveal_type(await requester.send({"type": "validate"}))
    del ok


def blocking_calls(requester: coterie.sync.Requester) -> None:
    reveal_type(requester.call(Order(skus=["a"])))
    reveal_type(requester.call({"type": "validate", "cardno": "4111"}, returns=int))


def answer_type(value: Any) -> None:
    reveal_type(Validate.type)
