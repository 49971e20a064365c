"""The seed's own Node services and the Python ones swap in for each other, both ways.

The seed (node-webinar-examples, cote variant) has a payment service that
sends ``{"type": "validate", "cardno": ...}`` and looks only at the error of
the answer, and a validation service that answers a bare ``true``.
``interop/seed/`` holds Node services written like them (cote 1.2.0, plain
Node http for the REST side). Here each runs next to its Python counterpart,
and a user pays over real HTTP:

- Node payment + Python validator: valid cards are "validated", refused ones
  "validation failed: <the Python validator's reason>" (its error is a bare
  string, so the seed's ``' validation failed: ' + err`` reads well);
- Python payment + Node validator: the bare ``true`` is accepted (it used to
  be a 503 "unexpected answer from validation service: 'True'").

Node cote broadcasts to 255.255.255.255, so these run only in the test
session's private network namespace (``tests/interop/conftest.py``).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from coterie.discovery.options import DEFAULT_PORT
from tests.e2e.support import EXAMPLES, PY, ROOT, Child, Children, children, free_port, pay

SEED = ROOT / "interop" / "seed"
HELLO_MS = 200
#: cote 1.2.0 reads its discovery timings from these (it has no broadcast variable).
NODE_ENV = {
    "COTE_HELLO_INTERVAL": str(HELLO_MS),
    "COTE_CHECK_INTERVAL": str(2 * HELLO_MS),
    "COTE_NODE_TIMEOUT": str(5 * HELLO_MS),
    "COTE_LOG": "false",
}
#: The Python services on cote's discovery port, as the Node ones use.
PY_DISCOVERY = ["--discovery-port", str(DEFAULT_PORT), "--hello-interval", str(HELLO_MS)]

GOOD = "4111111111111111"
LUHN_ERROR = "4111111111111112"
SEED_CARD = "123456"  # the seed README's card number


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


async def _node(procs: Children, name: str, script: str, **env: str) -> Child:
    """Start ``interop/seed/<script>`` with cote's variables and no COTE_* of ours."""
    saved = dict(os.environ)
    try:
        for key in [k for k in os.environ if k.startswith("COTE_")]:
            del os.environ[key]
        os.environ.update({**NODE_ENV, **env})
        child = await procs.start(name, "node", str(SEED / script))
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return child


async def _wait_for_log(child: Child, text: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while text not in child.output():
        assert child.alive, child.output()
        assert time.monotonic() < deadline, f"{child.name} never logged {text!r}:\n{child.output()}"
        await asyncio.sleep(0.05)


async def test_the_seed_node_payment_service_with_the_python_validator(
    tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    port = free_port()
    async with children(tmp_path) as procs:
        validator = await procs.start(
            "py-validator",
            PY,
            str(EXAMPLES / "validation_service.py"),
            "--id",
            "py-validator",
            *PY_DISCOVERY,
        )
        payment = await _node(procs, "node-payment", "payment-service.js", PORT=str(port))
        await _wait_for_log(payment, "PaymentService listening at")
        # cote 1.2.0 queues the request until it has a validator: no retry needed.
        first = await pay(session, port, GOOD, timeout=20)
        answers = [first] + [
            await pay(session, port, card, timeout=10) for card in (LUHN_ERROR, SEED_CARD, GOOD)
        ]
        validator_log = validator.output()
        payment_log = payment.output()
    assert [(a.status, a.text) for a in answers] == [
        (200, f"{GOOD} validated"),
        (200, f"{LUHN_ERROR} validation failed: failed the Luhn check"),
        (200, f"{SEED_CARD} validation failed: too short (6 digits, at least 8)"),
        (200, f"{GOOD} validated"),
    ]
    assert f"validating {LUHN_ERROR}" in validator_log
    assert f"paying with {LUHN_ERROR}" in payment_log
    assert "[object Object]" not in payment_log


async def test_the_python_payment_service_with_the_seed_node_validator(
    tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    port = free_port()
    async with children(tmp_path) as procs:
        validator = await _node(procs, "node-validator", "validation-service.js")
        payment = await procs.start(
            "py-payment",
            PY,
            str(EXAMPLES / "payment_service.py"),
            "--port",
            str(port),
            "--timeout",
            "20",
            *PY_DISCOVERY,
        )
        await _wait_for_log(payment, "payment service on http://")
        # The payment waits for a validator within its bound, then takes the bare true.
        answers = [await pay(session, port, GOOD, timeout=25)] + [
            await pay(session, port, card, timeout=10) for card in (SEED_CARD, GOOD)
        ]
        validator_log = validator.output()
    # The seed's validator accepts every number: so does a payment through it.
    assert [(a.status, a.text, a.by) for a in answers] == [
        (200, f"{GOOD} validated", "validation service"),
        (200, f"{SEED_CARD} validated", "validation service"),
        (200, f"{GOOD} validated", "validation service"),
    ]
    assert f"validating {SEED_CARD}" in validator_log
