"""Typed contracts over real sockets: msgspec and pydantic handlers, typed calls.

The wire is pinned to be the untyped one: an untyped requester's plain dict
reaches a typed handler as a validated instance and gets back the same JSON
an untyped handler sends; an invalid request never reaches the handler and
its caller gets an ``invalid`` error naming the field. This module uses
``from __future__ import annotations``, so every handler's annotation here is
a string resolved at registration.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable
from typing import Any, ClassVar

import msgspec
import pydantic
import pytest

import coterie.sync
from coterie import Contract, RemoteError, Requester, Responder
from tests.helpers import MS, DiscoveryFactory

SOON = 5_000 * MS


class Validate(msgspec.Struct, Contract[bool]):
    type: ClassVar[str] = "validate"
    cardno: str
    amount: int = 0


class Item(msgspec.Struct):
    sku: str
    qty: int


class Order(msgspec.Struct, Contract["Receipt"]):
    type: ClassVar[str] = "order"
    items: list[Item]


class Receipt(msgspec.Struct):
    total: int
    skus: list[str]


class Strict(msgspec.Struct, forbid_unknown_fields=True):
    n: int


class Card(pydantic.BaseModel, Contract[bool]):
    type: ClassVar[str] = "check"
    cardno: str
    tags: list[int] = []


class Account(pydantic.BaseModel):
    owner: str
    balance: int


class Lookup(pydantic.BaseModel, Contract[Account]):
    type: ClassVar[str] = "lookup"
    owner: str


@pytest.fixture
async def pair(disc: DiscoveryFactory) -> AsyncIterator[tuple[Responder, Requester]]:
    async with (
        Responder("typed", discovery=disc(), close_timeout=50 * MS) as rep,
        Requester("caller", discovery=disc(), timeout=SOON) as req,
    ):
        yield rep, req


async def invalid(req: Requester, request: dict[str, Any]) -> RemoteError:
    with pytest.raises(RemoteError) as caught:
        await req.send(request)
    return caught.value


# -- the responder side -----------------------------------------------------------


async def test_a_msgspec_handler_gets_a_validated_instance_and_its_model_is_sent_as_json(
    pair: tuple[Responder, Requester],
) -> None:
    rep, req = pair
    seen: list[Any] = []

    @rep.on("order")
    def order(o: Order) -> Receipt:
        seen.append(o)
        return Receipt(total=sum(i.qty for i in o.items), skus=[i.sku for i in o.items])

    @rep.on("plain-order")
    def plain(o: dict[str, Any]) -> dict[str, Any]:
        return {"total": sum(i["qty"] for i in o["items"]), "skus": [i["sku"] for i in o["items"]]}

    @rep.on("mixed")
    def mixed(v: Validate) -> Account:  # a msgspec request answered with a pydantic model
        return Account(owner=v.cardno, balance=v.amount)

    request = {"items": [{"sku": "a", "qty": 2}, {"sku": "b", "qty": 3}]}
    assert await req.send({"type": "mixed", "cardno": "4"}) == {"owner": "4", "balance": 0}
    typed = await req.send({"type": "order", **request})
    untyped = await req.send({"type": "plain-order", **request})
    assert typed == untyped == {"total": 5, "skus": ["a", "b"]}
    assert seen == [Order(items=[Item("a", 2), Item("b", 3)])]
    assert rep.handler("plain-order") is plain  # no model: registered as it is


async def test_a_pydantic_handler_gets_a_validated_instance(
    pair: tuple[Responder, Requester],
) -> None:
    rep, req = pair

    @rep.on("lookup")
    async def lookup(q: Lookup) -> Account:
        assert isinstance(q, Lookup)
        await asyncio.sleep(0)  # a handler that waits goes on as a task
        return Account(owner=q.owner, balance=len(q.owner))

    @rep.on("check")
    def check(card: Card) -> list[Any]:
        return [card.cardno, card.tags, Account(owner="x", balance=1)]

    assert await req.send({"type": "lookup", "owner": "ada"}) == {"owner": "ada", "balance": 3}
    assert await req.send({"type": "check", "cardno": "4111", "tags": [1]}) == [
        "4111",
        [1],
        {"owner": "x", "balance": 1},
    ]


async def test_a_plain_handler_that_returns_an_awaitable_has_its_model_answer_encoded(
    pair: tuple[Responder, Requester],
) -> None:
    rep, req = pair

    async def receipt(o: Order) -> Receipt:
        await asyncio.sleep(0)
        return Receipt(total=len(o.items), skus=[])

    @rep.on("order")
    def order(o: Order) -> Awaitable[Receipt]:
        return receipt(o)  # not an async def itself: its result is awaited, then encoded

    assert await req.send({"type": "order", "items": []}) == {"total": 0, "skus": []}


async def test_invalid_input_never_reaches_the_handler_and_names_the_field(
    pair: tuple[Responder, Requester],
) -> None:
    rep, req = pair
    calls: list[Any] = []

    @rep.on("validate")
    def validate(v: Validate) -> bool:
        calls.append(v)
        return True

    @rep.on("order")
    async def order(o: Order) -> None:
        calls.append(o)

    @rep.on("check")
    def check(card: Card) -> bool:
        calls.append(card)
        return True

    wrong = await invalid(req, {"type": "validate", "cardno": 4111})
    assert wrong.code == "invalid"
    assert wrong.name == "ValidationError"
    assert wrong.message == "$.cardno: expected str, got int"
    assert wrong.payload == {
        "message": "$.cardno: expected str, got int",
        "name": "ValidationError",
        "code": "invalid",
    }
    missing = await invalid(req, {"type": "validate"})
    assert missing.message == "$.cardno: field required"
    nested = await invalid(req, {"type": "order", "items": [{"sku": "a", "qty": "2"}]})
    assert nested.message == "$.items[0].qty: expected int, got str"
    both = await invalid(req, {"type": "check", "tags": [1, "x"]})
    assert both.code == "invalid"
    assert both.message == (
        "$.cardno: field required; "
        "$.tags[1]: input should be a valid integer, unable to parse string as an integer, got str"
    )
    assert calls == []
    assert RemoteError("declined").code is None  # only coterie's own refusals carry a code
    assert await req.send({"type": "validate", "cardno": "4111"}) is True
    assert calls == [Validate(cardno="4111")]


async def test_a_struct_that_forbids_unknown_fields_is_not_shown_type_or_reserved_fields(
    pair: tuple[Responder, Requester],
) -> None:
    rep, req = pair

    @rep.on("strict")
    def strict(s: Strict) -> int:
        return s.n * 2

    assert await req.send({"type": "strict", "n": 4, "__timeout": 5000}) == 8


async def test_a_result_that_cannot_be_sent_is_an_error_reply_that_says_so(
    pair: tuple[Responder, Requester], caplog: pytest.LogCaptureFixture
) -> None:
    rep, req = pair

    @rep.on("validate")
    def validate(v: Validate) -> Any:
        return {"when": object()}

    with caplog.at_level(logging.ERROR, "coterie.responder"), pytest.raises(RemoteError) as e:
        await req.send({"type": "validate", "cardno": "1"})
    assert e.value.name == "TypeError"
    assert e.value.message == (
        "the handler's result cannot be sent as JSON: "
        "Encoding objects of type object is unsupported"
    )
    assert "handler for 'validate' raised TypeError" in caplog.text


async def test_a_model_defined_where_it_cannot_be_resolved_is_said_at_registration(
    pair: tuple[Responder, Requester], caplog: pytest.LogCaptureFixture
) -> None:
    rep, req = pair

    class Local(msgspec.Struct):
        n: int

    def local(q: Local) -> Any:
        return q

    with caplog.at_level(logging.WARNING, "coterie.typed"):
        rep.on("local", local)
    assert "annotation 'Local' of its first parameter cannot be resolved" in caplog.text
    assert rep.handler("local") is local
    assert await req.send({"type": "local", "n": 1}) == {"type": "local", "n": 1}


# -- the calling side -------------------------------------------------------------


async def test_a_typed_call_sends_the_plain_request_and_checks_the_answer(
    pair: tuple[Responder, Requester],
) -> None:
    rep, req = pair
    received: list[dict[str, Any]] = []

    @rep.on("validate")
    def validate(v: dict[str, Any]) -> Any:
        received.append(v)
        return v["cardno"].startswith("4") if v["amount"] >= 0 else "not a bool"

    @rep.on("order")
    def order(o: Order) -> Receipt:
        return Receipt(total=len(o.items), skus=[i.sku for i in o.items])

    @rep.on("lookup")
    def lookup(q: Lookup) -> dict[str, Any]:
        return {"owner": q.owner, "balance": 7}

    assert await req.call(Validate(cardno="4111")) is True
    assert received == [{"type": "validate", "cardno": "4111", "amount": 0}]
    assert await req.call(Order(items=[Item("a", 1)])) == Receipt(total=1, skus=["a"])
    assert await req.call(Lookup(owner="ada")) == Account(owner="ada", balance=7)
    with pytest.raises(TypeError) as caught:
        await req.call(Validate(cardno="4111", amount=-1))
    assert str(caught.value) == "the answer is not a bool: $: expected bool, got str"
    assert await req.call({"type": "validate", "cardno": "5", "amount": 0}, returns=bool) is False
    assert await req.call(Validate(cardno="4111"), returns=Any) is True
    with pytest.raises(TypeError, match=r"answer is not a int: \$: expected int, got bool"):
        await req.call(Validate(cardno="4111"), returns=int)  # JSON true is not a number
    ints = await req.call({"type": "order", "items": [{"sku": "x", "qty": 1}]}, returns=dict)
    assert ints == {"total": 1, "skus": ["x"]}
    with pytest.raises(TypeError, match=r"answer is not a int: \$: expected int, got object"):
        await req.call({"type": "order", "items": []}, returns=int)
    with pytest.raises(TypeError, match=r"answer is not a list\[int\]: \$: expected array"):
        await req.call({"type": "order", "items": []}, returns=list[int])


async def test_the_blocking_requester_makes_the_same_typed_calls(
    pair: tuple[Responder, Requester], disc: DiscoveryFactory
) -> None:
    rep, _ = pair

    @rep.on("validate")
    def validate(v: Validate) -> Any:
        return v.cardno.startswith("4") if v.amount >= 0 else "not a bool"

    @rep.on("order")
    def order(o: Order) -> Receipt:
        return Receipt(total=len(o.items), skus=[i.sku for i in o.items])

    requester = coterie.sync.Requester("blocking caller", discovery=disc(), timeout=SOON)
    try:
        assert await asyncio.to_thread(requester.call, Validate(cardno="4111")) is True
        receipt = await asyncio.to_thread(requester.call, Order(items=[Item("a", 1)]))
        assert receipt == Receipt(total=1, skus=["a"])
        with pytest.raises(TypeError, match=r"^the answer is not a bool: \$: expected bool"):
            await asyncio.to_thread(requester.call, Validate(cardno="4", amount=-1))
        with pytest.raises(RemoteError) as caught:
            await asyncio.to_thread(requester.send, {"type": "validate", "cardno": 1})
        assert (caught.value.code, caught.value.message) == (
            "invalid",
            "$.cardno: expected str, got int",
        )
    finally:
        await asyncio.to_thread(requester.close)


async def test_a_model_that_cannot_be_sent_is_refused_before_anything_is_sent(
    pair: tuple[Responder, Requester],
) -> None:
    rep, req = pair
    rep.on("validate", lambda v: True)

    class NoType(msgspec.Struct):
        cardno: str

    with pytest.raises(TypeError) as caught:
        await req.call(Validate(cardno=object()))  # type: ignore[arg-type]
    assert str(caught.value) == (
        "cannot send Validate as JSON: Encoding objects of type object is unsupported"
    )
    with pytest.raises(TypeError, match=r"NoType has no request type: add `type: ClassVar\[str\]"):
        await req.call(NoType(cardno="1"))  # type: ignore[call-overload]
    with pytest.raises(TypeError, match=r"a request must be a dict or a msgspec\.Struct"):
        await req.call(["validate"])  # type: ignore[call-overload]
    assert rep.handled == 0


async def test_metrics_count_an_invalid_request_as_invalid(disc: DiscoveryFactory) -> None:
    from prometheus_client import CollectorRegistry

    from coterie.metrics import Metrics
    from tests.test_metrics import parse, value

    metrics = Metrics(registry=CollectorRegistry())
    async with (
        Responder("typed", discovery=disc(), metrics=metrics) as rep,
        Requester("caller", discovery=disc(), timeout=SOON, metrics=metrics) as req,
    ):

        @rep.on("validate")
        def validate(v: Validate) -> bool:
            return True

        assert await req.call(Validate(cardno="4111")) is True
        with pytest.raises(RemoteError):
            await req.send({"type": "validate", "cardno": 1})
        # The responder counts its outcome after the reply is written: wait for it.
        handled = "coterie_requests_handled_total"
        for _ in range(100):
            samples = parse(metrics.exposition()[0].decode())
            if value(samples, handled, type="validate", outcome="invalid"):
                break
            await asyncio.sleep(10 * MS)
    for name in ("coterie_requests_total", handled):
        assert value(samples, name, type="validate", outcome="ok") == 1, name
        assert value(samples, name, type="validate", outcome="invalid") == 1, name
        assert value(samples, name, type="validate", outcome="error") == 0, name
