"""Responder(max_concurrent=, max_queue=): a bound on handlers in progress (issue 25 item 2).

Real responders and requesters on loopback sockets. A request past the queue
is refused unrun (``queue_full``) and the requester sends it to another
responder, even with ``retry=False``; it fails only when every one refused.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from contextlib import AsyncExitStack
from typing import Any

import pytest

from coterie import QueueFullError, Requester, Responder
from tests.helpers import MS, fast_discovery

SOON = 5_000 * MS


class Gauge:
    """Counts handlers in progress on each responder; the most seen at once."""

    def __init__(self) -> None:
        self.now: Counter[str] = Counter()
        self.most: Counter[str] = Counter()
        self.ran: Counter[str] = Counter()

    def handler(self, name: str, hold: float) -> Any:
        async def slow(request: dict[str, Any]) -> str:
            self.now[name] += 1
            self.ran[name] += 1
            self.most[name] = max(self.most[name], self.now[name])
            try:
                await asyncio.sleep(hold)
            finally:
                self.now[name] -= 1
            return name

        return slow


async def _mesh(
    stack: AsyncExitStack, disc_port: int, gauge: Gauge, caps: list[tuple[int, int]]
) -> Requester:
    for i, (concurrent, queue) in enumerate(caps):
        rep = Responder(
            f"capped-{i}",
            host="127.0.0.1",
            discovery=fast_discovery(disc_port),
            max_concurrent=concurrent,
            max_queue=queue,
        )
        rep.on("slow", gauge.handler(f"capped-{i}", 100 * MS))
        await stack.enter_async_context(rep)
    req = await stack.enter_async_context(
        Requester("caller", discovery=fast_discovery(disc_port), timeout=20 * SOON)
    )
    await req.wait_connected(len(caps), timeout=2 * SOON)
    return req


async def _send_all(req: Requester, n: int) -> list[Any]:
    """``n`` slow requests at once, ``retry=False``: answers, or the errors raised."""
    async with asyncio.timeout(4 * SOON):
        return await asyncio.gather(
            *(req.send({"type": "slow"}, retry=False) for _ in range(n)),
            return_exceptions=True,
        )


async def test_ten_slow_requests_over_two_capped_responders_none_fails(disc_port: int) -> None:
    gauge = Gauge()
    async with AsyncExitStack() as stack:
        req = await _mesh(stack, disc_port, gauge, [(2, 3), (2, 3)])
        answers = await _send_all(req, 10)
    assert Counter(answers) == {"capped-0": 5, "capped-1": 5}
    assert gauge.most == {"capped-0": 2, "capped-1": 2}
    assert sum(gauge.ran.values()) == 10


async def test_a_refused_request_goes_to_the_other_responder_even_without_retry(
    disc_port: int,
) -> None:
    gauge = Gauge()
    async with AsyncExitStack() as stack:
        req = await _mesh(stack, disc_port, gauge, [(1, 0), (3, 0)])
        answers = await _send_all(req, 4)
    # However they were spread, capped-0 ran one and capped-1 the rest.
    assert Counter(answers) == {"capped-0": 1, "capped-1": 3}
    assert gauge.ran == {"capped-0": 1, "capped-1": 3}
    assert gauge.most == {"capped-0": 1, "capped-1": 3}


async def test_every_responder_refusing_fails_with_a_clear_queue_full(disc_port: int) -> None:
    gauge = Gauge()
    async with AsyncExitStack() as stack:
        req = await _mesh(stack, disc_port, gauge, [(1, 1), (1, 1)])
        answers = await _send_all(req, 5)
    failed = [a for a in answers if isinstance(a, BaseException)]
    assert len(failed) == 1, answers
    assert isinstance(failed[0], QueueFullError)
    assert "refused unrun by every responder that serves it (2)" in str(failed[0])
    assert sum(gauge.ran.values()) == 4  # the refused one never ran anywhere
    assert gauge.most == {"capped-0": 1, "capped-1": 1}


@pytest.mark.parametrize(
    ("kwargs", "text"),
    [
        ({"max_concurrent": 0}, "max_concurrent must be a positive int"),
        # Compiled, mypyc checks the type first: "int or None object expected; got float".
        ({"max_concurrent": 1.5}, "max_concurrent must be a positive int|int or None"),
        ({"max_concurrent": 2, "max_queue": -1}, "max_queue must be an int >= 0"),
    ],
)
def test_bad_caps_get_a_clear_error(kwargs: dict[str, Any], text: str) -> None:
    with pytest.raises((TypeError, ValueError), match=text):
        Responder("bad", **kwargs)
