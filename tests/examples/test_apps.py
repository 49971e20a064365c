"""The payment example's apps over real HTTP and a real mesh, in one process."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator

import aiohttp
import pytest

from coterie import Requester
from examples.payment.apps import (
    HttpValidation,
    MeshValidation,
    ValidationUnavailable,
    Verdict,
    payment_app,
    serve_app,
    validation_app,
    validation_responder,
    verdict,
)
from tests.e2e.support import fast_options, free_port, pay

GOOD = "4111111111111111"


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


@pytest.fixture
def dport() -> int:
    import socket

    return free_port(socket.SOCK_DGRAM)


async def test_mesh_payments_round_robin_over_validators(
    session: aiohttp.ClientSession, dport: int
) -> None:
    opts = fast_options(dport)
    async with (
        validation_responder("v1", discovery=opts),
        validation_responder("v2", discovery=opts),
        Requester("payment", discovery=opts, timeout=5) as requester,
    ):
        await requester.wait_connected(2, timeout=5)
        runner, port = await serve_app(payment_app(MeshValidation(requester, 5)), "127.0.0.1", 0)
        try:
            answers = [await pay(session, port, GOOD) for _ in range(6)]
        finally:
            await runner.cleanup()
    assert {a.text for a in answers} == {f"{GOOD} validated"}
    assert {a.status for a in answers} == {200}
    assert Counter(a.by for a in answers) == {"v1": 3, "v2": 3}
    assert answers[0].by != answers[1].by  # alternating, not batched


async def test_a_waiting_payment_completes_when_a_validator_starts(
    session: aiohttp.ClientSession, dport: int
) -> None:
    opts = fast_options(dport)
    async with Requester("payment", discovery=opts, timeout=10) as requester:
        runner, port = await serve_app(payment_app(MeshValidation(requester, 10)), "127.0.0.1", 0)
        try:
            waiting = asyncio.ensure_future(pay(session, port, GOOD))
            await asyncio.sleep(0.3)
            assert not waiting.done()  # no validator yet: it waits, it does not fail
            async with validation_responder("late", discovery=opts):
                answer = await asyncio.wait_for(waiting, 5)
        finally:
            await runner.cleanup()
    assert (answer.status, answer.text, answer.by) == (200, f"{GOOD} validated", "late")


async def test_mesh_timeout_is_a_validation_failure_not_a_500(
    session: aiohttp.ClientSession, dport: int
) -> None:
    async with Requester("payment", discovery=fast_options(dport)) as requester:
        runner, port = await serve_app(payment_app(MeshValidation(requester, 0.2)), "127.0.0.1", 0)
        try:
            answer = await pay(session, port, GOOD)
        finally:
            await runner.cleanup()
    assert answer.status == 503
    assert answer.text == (
        f"{GOOD} validation failed: timeout: no validation service answered within 0.2 s"
    )


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("4111abcd1111", "4111abcd1111 validation failed: not a card number: 'a' is not a digit"),
        ("", "(empty) validation failed: empty card number"),
        ("4" * 40, "4" * 40 + " validation failed: too long (40 digits, at most 19)"),
        ("4111111111111112", "4111111111111112 validation failed: failed the Luhn check"),
        ("%20", "  validation failed: empty card number"),
        ("a%2Fb", "a/b validation failed: not a card number: 'a' is not a digit"),
    ],
)
async def test_bad_card_numbers_get_a_clear_answer_over_http_validation(
    session: aiohttp.ClientSession, path: str, expected: str
) -> None:
    vrunner, vport = await serve_app(validation_app("h1"), "127.0.0.1", 0)
    validate = HttpValidation(f"http://127.0.0.1:{vport}", session, 5)
    prunner, pport = await serve_app(payment_app(validate), "127.0.0.1", 0)
    try:
        answer = await pay(session, pport, path)
    finally:
        await prunner.cleanup()
        await vrunner.cleanup()
    assert (answer.status, answer.text, answer.by) == (422, expected, "h1")


async def test_a_huge_card_number_is_refused_by_the_payment_service(
    session: aiohttp.ClientSession,
) -> None:
    calls: list[str] = []

    async def validate(cardno: str) -> Verdict:
        calls.append(cardno)
        return {"valid": True, "reason": None, "by": "x"}

    runner, port = await serve_app(payment_app(validate), "127.0.0.1", 0)
    try:
        answer = await pay(session, port, "9" * 20000)
    finally:
        await runner.cleanup()
    assert answer.status == 422
    assert answer.text == "9" * 32 + "... validation failed: too long (20000 characters)"
    assert calls == []


@pytest.fixture
async def payment_port() -> AsyncIterator[int]:
    """A payment service that validates cards locally."""

    async def validate(cardno: str) -> Verdict:
        return verdict(cardno, "local")

    runner, port = await serve_app(payment_app(validate), "127.0.0.1", 0)
    try:
        yield port
    finally:
        await runner.cleanup()


@pytest.mark.parametrize("digits", [100_000, 500_000])
async def test_a_huge_url_gets_the_payment_service_own_4xx(
    session: aiohttp.ClientSession, payment_port: int, digits: int
) -> None:
    # aiohttp alone answers 400 with a bytearray(b'/pay/4444...') dump past 8190 bytes.
    answer = await pay(session, payment_port, "4" * digits)
    assert answer.status == 422
    assert answer.text == f"{'4' * 32}... validation failed: too long ({digits} characters)"
    assert "bytearray" not in answer.text


@pytest.mark.parametrize("cardno", ["-4111111111111111", "4111111111111111-", "4111--1111111111"])
async def test_a_dash_outside_digit_groups_is_refused(
    session: aiohttp.ClientSession, payment_port: int, cardno: str
) -> None:
    answer = await pay(session, payment_port, cardno)
    assert (answer.status, answer.text) == (
        422,
        f"{cardno} validation failed: not a card number: "
        "a space or dash may only stand between two digits",
    )


async def test_unreachable_or_broken_validation_is_503_with_a_reason(
    session: aiohttp.ClientSession,
) -> None:
    closed = free_port()
    unreachable = HttpValidation(f"http://127.0.0.1:{closed}", session, 2)

    async def broken(cardno: str) -> Verdict:
        raise RuntimeError("boom")

    async def unavailable(cardno: str) -> Verdict:
        raise ValidationUnavailable("down for lunch")

    answers = []
    for validate in (unreachable, broken, unavailable):
        runner, port = await serve_app(payment_app(validate), "127.0.0.1", 0)
        try:
            answers.append(await pay(session, port, GOOD))
        finally:
            await runner.cleanup()
    assert [a.status for a in answers] == [503, 503, 503]
    assert answers[0].text.startswith(f"{GOOD} validation failed: cannot reach http://127.0.0.1:")
    assert answers[1].text == f"{GOOD} validation failed: internal error: RuntimeError('boom')"
    assert answers[2].text == f"{GOOD} validation failed: down for lunch"


async def test_serve_app_names_a_taken_port() -> None:
    runner, port = await serve_app(validation_app("a"), "127.0.0.1", 0)
    try:
        with pytest.raises(OSError, match=f"cannot listen on 127.0.0.1:{port}"):
            await serve_app(validation_app("b"), "127.0.0.1", port)
    finally:
        await runner.cleanup()
