"""coterie.sync.Requester against a real Responder over real sockets.

The responder runs on the test's event loop; every blocking call runs on
another thread (``asyncio.to_thread``), as a Flask view's would, and meets
coterie.sync's own loop thread.
"""

from __future__ import annotations

import asyncio
import gc
import re
import threading
from typing import Any

import pytest

import coterie
import coterie.sync
from coterie import NotRunningError, RemoteError, RequestTimeoutError
from tests.helpers import MS, DiscoveryFactory, wait_for


def _without_ids(message: str) -> str:
    """A request's message with its id (pid:counter) taken out."""
    return re.sub(r"request \d+:\d+", "request <id>", message)


def _luhn(req: dict[str, Any]) -> bool:
    digits = [int(d) for d in reversed(req["cardno"])]
    return (sum(digits[0::2]) + sum(sum(divmod(2 * d, 10)) for d in digits[1::2])) % 10 == 0


def _refuse(req: dict[str, Any]) -> None:
    raise ValueError(f"card {req['cardno']} is blocked")


async def _responder(disc: DiscoveryFactory) -> coterie.Responder:
    responder = coterie.Responder("validation", discovery=disc())
    responder.on("validate", _luhn)
    responder.on("refuse", _refuse)
    responder.on("thread", lambda req: threading.current_thread().name)
    return await responder.start()


async def test_send_answers_from_any_thread(disc: DiscoveryFactory) -> None:
    responder = await _responder(disc)
    requester = coterie.sync.Requester("payment", discovery=disc(), timeout=10_000 * MS)
    try:
        card = {"type": "validate", "cardno": "4111111111111111"}
        assert await asyncio.to_thread(requester.send, card) is True
        bad = {"type": "validate", "cardno": "4111111111111112"}
        assert await asyncio.to_thread(requester.send, bad) is False

        # 16 threads share the one requester; every answer is its own request's.
        def many(start: int) -> list[bool]:
            cards = [f"{n:016d}" for n in range(start, start + 25)]
            answers = [requester.send({"type": "validate", "cardno": c}) for c in cards]
            assert answers == [_luhn({"cardno": c}) for c in cards]
            return answers

        results = await asyncio.gather(*(asyncio.to_thread(many, 1000 * i) for i in range(16)))
        assert sum(len(r) for r in results) == 400
        # The handler ran on the responder's loop, not on a sync thread.
        assert await asyncio.to_thread(requester.send, {"type": "thread"}) == (
            threading.current_thread().name
        )
    finally:
        await asyncio.to_thread(requester.close)
        await responder.close()


async def test_errors_are_the_async_apis_with_its_messages(disc: DiscoveryFactory) -> None:
    responder = await _responder(disc)
    sync = coterie.sync.Requester("payment", discovery=disc())
    async_requester = await coterie.Requester("payment", discovery=disc()).start()
    refused = {"type": "refuse", "cardno": "4111111111111111"}
    try:
        await async_requester.wait_connected(1, timeout=5_000 * MS)
        for bad, timeout in (
            (refused, 5_000 * MS),
            ({"type": "nobody"}, 100 * MS),
            (["not", "a", "dict"], 100 * MS),
            ({"no": "type"}, 100 * MS),
        ):
            with pytest.raises(Exception) as expected:
                await async_requester.send(bad, timeout=timeout)  # type: ignore[arg-type]
            with pytest.raises(Exception) as got:
                await asyncio.to_thread(sync.send, bad, timeout=timeout)  # type: ignore[arg-type]
            assert type(got.value) is type(expected.value)
            assert _without_ids(str(got.value)) == _without_ids(str(expected.value))
        with pytest.raises(RemoteError, match="card 4111111111111111 is blocked") as remote:
            await asyncio.to_thread(sync.send, refused)
        assert remote.value.name == "ValueError"
        with pytest.raises(RequestTimeoutError, match="no responder serves 'nobody'"):
            await asyncio.to_thread(sync.send, {"type": "nobody"}, timeout=100 * MS)
    finally:
        await asyncio.to_thread(sync.close)
        await async_requester.close()
        await responder.close()


async def test_calls_after_close_raise_and_close_is_idempotent(disc: DiscoveryFactory) -> None:
    responder = await _responder(disc)
    card = {"type": "validate", "cardno": "4111111111111111"}

    def use() -> None:
        with coterie.sync.Requester("payment", discovery=disc(), timeout=10_000 * MS) as r:
            assert r.send(card) is True
        with pytest.raises(NotRunningError, match=r"Requester\('payment'\) is closed"):
            r.send(card)
        r.close()  # again: nothing
        never_used = coterie.sync.Requester("payment", discovery=disc())
        never_used.close()
        with pytest.raises(NotRunningError, match="is closed: make a new one"):
            never_used.send(card)
        with pytest.raises(NotRunningError):
            never_used.start()

    try:
        await asyncio.to_thread(use)
    finally:
        await responder.close()


async def test_bad_arguments_fail_where_they_are_given(disc: DiscoveryFactory) -> None:
    with pytest.raises(ValueError, match="timeout must be positive"):
        coterie.sync.Requester("payment", discovery=disc(), timeout=0)
    with pytest.raises(TypeError, match="unexpected keyword argument 'colour'"):
        coterie.sync.Requester("payment", colour="red")


async def test_a_call_from_a_running_event_loop_names_the_async_api(
    disc: DiscoveryFactory,
) -> None:
    requester = coterie.sync.Requester("payment", discovery=disc())
    with pytest.raises(RuntimeError, match=r"await coterie\.Requester\(\.\.\.\)\.send"):
        requester.send({"type": "validate"})
    with pytest.raises(RuntimeError, match="'async with'"):
        requester.start()
    with pytest.raises(RuntimeError, match="asyncio API"), requester:
        pass
    await asyncio.to_thread(requester.close)


async def test_a_requester_dropped_without_close_leaves_the_mesh(disc: DiscoveryFactory) -> None:
    responder = await _responder(disc)

    def use_and_drop() -> None:
        requester = coterie.sync.Requester("payment", discovery=disc(), timeout=10_000 * MS)
        assert requester.send({"type": "validate", "cardno": "4111111111111111"}) is True
        assert requester.stats().links == 1
        del requester
        gc.collect()

    try:
        await asyncio.to_thread(use_and_drop)
        assert responder.stats().links <= 1
        # Garbage collected, it is closed on the loop: its link goes and its node leaves.
        await wait_for(lambda: responder.stats().links == 0, 5_000 * MS)
        await wait_for(lambda: not responder.peers, 5_000 * MS)
    finally:
        await responder.close()
