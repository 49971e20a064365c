"""``raise Retryable(...)`` in a handler: the request is tried on another responder (issue 26).

Real responders and a requester on loopback sockets. The requester sends a
request whose handler raised :class:`coterie.Retryable` to another responder
after a back-off, never to the same one twice in a row, within the request's
timeout; when that is spent the caller gets the last retryable error.
"""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack
from typing import Any

import pytest

from coterie import RemoteError, Requester, Responder, Retryable
from tests.helpers import MS, fast_discovery

SOON = 5_000 * MS


class Log:
    """Which responder ran each try, in order."""

    def __init__(self) -> None:
        self.ran: list[str] = []

    def handler(self, name: str, *, fails: bool) -> Any:
        async def handle(request: dict[str, Any]) -> str:
            self.ran.append(name)
            if fails:
                raise Retryable(f"{name}: pool full (try {len(self.ran)})")
            return f"answered by {name}"

        return handle


async def _mesh(stack: AsyncExitStack, disc_port: int, log: Log, fails: list[bool]) -> Requester:
    """A requester linked to ``flaky-0``, ``flaky-1``, ... in that order.

    Fewest in flight: with all idle it picks the first linked (``flaky-0``)
    every time, so only the "not the same node twice in a row" rule moves a
    retry elsewhere.
    """
    req = await stack.enter_async_context(
        Requester("caller", discovery=fast_discovery(disc_port), balance="pending")
    )
    for i, fail in enumerate(fails):
        rep = Responder(f"flaky-{i}", host="127.0.0.1", discovery=fast_discovery(disc_port))
        rep.on("work", log.handler(f"flaky-{i}", fails=fail))
        await stack.enter_async_context(rep)
        await req.wait_connected(i + 1, timeout=2 * SOON)
    return req


async def test_a_retryable_error_on_one_node_is_answered_by_another(disc_port: int) -> None:
    log = Log()
    async with AsyncExitStack() as stack:
        req = await _mesh(stack, disc_port, log, [True, False])
        answers = []
        for _ in range(3):
            async with asyncio.timeout(SOON):
                answers.append(await req.send({"type": "work"}, timeout=SOON))
    assert answers == ["answered by flaky-1"] * 3
    # Each request ran on flaky-0 first (it raised Retryable), then on flaky-1.
    assert log.ran == ["flaky-0", "flaky-1"] * 3


async def test_both_nodes_retryable_alternate_and_the_caller_gets_the_last_error(
    disc_port: int,
) -> None:
    log = Log()
    bound = 400 * MS
    async with AsyncExitStack() as stack:
        req = await _mesh(stack, disc_port, log, [True, True])
        loop = asyncio.get_running_loop()
        began = loop.time()
        with pytest.raises(RemoteError) as caught:
            async with asyncio.timeout(SOON):
                await req.send({"type": "work"}, timeout=bound)
        took = loop.time() - began
    assert caught.value.code == "retryable"
    assert caught.value.name == "Retryable"
    assert f"try {len(log.ran)}" in caught.value.message  # the last error, not the first
    assert len(log.ran) >= 3
    assert all(a != b for a, b in zip(log.ran, log.ran[1:], strict=False)), log.ran
    assert set(log.ran) == {"flaky-0", "flaky-1"}
    assert took <= bound + 200 * MS  # within the caller's bound (plus scheduling)
