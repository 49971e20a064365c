"""The mesh way end to end: the example scripts as processes, real HTTP, real discovery."""

from __future__ import annotations

import asyncio
import socket
from collections import Counter
from pathlib import Path

import aiohttp

from tests.e2e.support import (
    GOOD,
    children,
    free_port,
    pay,
    start_payment,
    start_validator,
    wait_until_validated,
)


async def test_mesh_way_spreads_waits_and_loses_nothing(
    tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    dport, port = free_port(socket.SOCK_DGRAM), free_port()
    async with children(tmp_path) as procs:
        await start_payment(procs, dport, port, "--timeout", "20")
        await start_validator(procs, dport, "m1")
        await start_validator(procs, dport, "m2")
        await wait_until_validated(session, port, GOOD, distinct=2, procs=procs)

        # Round robin, visible across validators.
        answers = [await pay(session, port, GOOD) for _ in range(6)]
        assert {a.text for a in answers} == {f"{GOOD} validated"}
        assert Counter(a.by for a in answers) == {"m1": 3, "m2": 3}

        # The validators log what they validated, as in the seed.
        assert f"validating {GOOD}" in procs.started[1].output()

        # Bad card numbers: a clear answer, never a 500.
        for card, reason in [
            ("12x4", "not a card number: 'x' is not a digit"),
            ("", "empty card number"),
            ("4" * 300, "too long (300 characters)"),
            ("4" * 25, "too long (25 digits, at most 19)"),
        ]:
            answer = await pay(session, port, card)
            assert answer.status == 422
            assert answer.text.endswith(f" validation failed: {reason}")

        # Every validator stopped: payments wait, then complete when one returns.
        await asyncio.gather(*(c.stop() for c in procs.started[1:]))
        waiting = [asyncio.ensure_future(pay(session, port, GOOD, timeout=20)) for _ in range(3)]
        await asyncio.sleep(0.5)
        assert not any(t.done() for t in waiting)
        await start_validator(procs, dport, "m3")
        answers = await asyncio.wait_for(asyncio.gather(*waiting), 15)
        assert [(a.status, a.text, a.by) for a in answers] == [(200, f"{GOOD} validated", "m3")] * 3
