"""The payment service's own answers at the edges: huge URLs, misplaced dashes."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from examples.payment.apps import Verdict, payment_app, serve_app, verdict
from tests.e2e.support import pay


@pytest.fixture
async def payment_port() -> AsyncIterator[int]:
    async def validate(cardno: str) -> Verdict:
        return verdict(cardno, "local")

    runner, port = await serve_app(payment_app(validate), "127.0.0.1", 0)
    try:
        yield port
    finally:
        await runner.cleanup()


@pytest.mark.parametrize("digits", [100_000, 500_000])
async def test_a_huge_url_gets_the_payment_service_own_4xx(payment_port: int, digits: int) -> None:
    # aiohttp alone answers 400 with a bytearray(b'/pay/4444...') dump past 8190 bytes.
    async with aiohttp.ClientSession() as session:
        answer = await pay(session, payment_port, "4" * digits)
    assert answer.status == 422
    assert answer.text == f"{'4' * 32}... validation failed: too long ({digits} characters)"
    assert "bytearray" not in answer.text


@pytest.mark.parametrize("cardno", ["-4111111111111111", "4111111111111111-", "4111--1111111111"])
async def test_a_dash_outside_digit_groups_is_refused(payment_port: int, cardno: str) -> None:
    async with aiohttp.ClientSession() as session:
        answer = await pay(session, payment_port, cardno)
    assert (answer.status, answer.text) == (
        422,
        f"{cardno} validation failed: not a card number: "
        "a space or dash may only stand between two digits",
    )
