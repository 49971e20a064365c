"""coterie.sync.Publisher and Subscriber against asyncio ones, over real sockets."""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

import pytest

import coterie
import coterie.sync
from coterie import NotRunningError
from tests.helpers import MS, DiscoveryFactory, wait_for


async def test_publish_reaches_an_asyncio_subscriber(disc: DiscoveryFactory) -> None:
    got: list[Any] = []
    subscriber = coterie.Subscriber("listener", discovery=disc())
    subscriber.on("rate", got.append)
    await subscriber.start()
    publisher = coterie.sync.Publisher("ticker", discovery=disc())
    try:
        await asyncio.to_thread(publisher.wait_subscribers, 1, 5_000 * MS)
        assert await asyncio.to_thread(publisher.publish, "rate", {"eur": 1.08}) == 1
        await wait_for(lambda: got == [{"eur": 1.08}], 5_000 * MS)
        with pytest.raises(TypeError, match="event must be a non-empty string"):
            await asyncio.to_thread(publisher.publish, "", 1)
    finally:
        await asyncio.to_thread(publisher.close)
        await subscriber.close()
    with pytest.raises(NotRunningError):
        await asyncio.to_thread(publisher.publish, "rate", 1)


async def test_handlers_run_on_the_pool_in_order_of_arrival(disc: DiscoveryFactory) -> None:
    publisher = await coterie.Publisher("ticker", discovery=disc()).start()
    got: list[tuple[str, Any, str]] = []
    done = threading.Event()

    def on_rate(data: Any) -> None:
        got.append(("rate", data, threading.current_thread().name))
        if len(got) == 3:
            done.set()

    def on_any(event: str, data: Any) -> None:
        got.append((event, data, threading.current_thread().name))

    subscriber = coterie.sync.Subscriber("listener", discovery=disc(), workers=1)
    try:
        await asyncio.to_thread(subscriber.on, "rate", on_rate)
        await asyncio.to_thread(subscriber.on("user.*"), on_any)
        await publisher.wait_subscribers(1, timeout=5_000 * MS)
        await publisher.publish("rate", 1)
        await publisher.publish("user.created", {"id": 7})
        await publisher.publish("rate", 2)
        await publisher.publish("other", 3)  # no handler: dropped
        await asyncio.to_thread(done.wait, 5_000 * MS)
        await wait_for(lambda: len(got) == 3, 5_000 * MS)
        assert [(e, d) for e, d, _ in got] == [
            ("rate", 1),
            ("user.created", {"id": 7}),
            ("rate", 2),
        ]
        assert {t for _, _, t in got} == {"coterie-sync-handler-0"}
    finally:
        await asyncio.to_thread(subscriber.close)
        await publisher.close()


async def test_a_full_pool_drops_counts_and_warns(
    disc: DiscoveryFactory, caplog: pytest.LogCaptureFixture
) -> None:
    publisher = await coterie.Publisher("ticker", discovery=disc()).start()
    release = threading.Event()
    ran: list[int] = []

    def slow(data: int) -> None:
        release.wait(10_000 * MS)
        ran.append(data)

    subscriber = coterie.sync.Subscriber("listener", discovery=disc(), workers=1, max_queued=2)
    try:
        await asyncio.to_thread(subscriber.on, "tick", slow)
        await publisher.wait_subscribers(1, timeout=5_000 * MS)
        with caplog.at_level(logging.WARNING, logger="coterie.sync"):
            for n in range(6):
                await publisher.publish("tick", n)
            # One runs, two wait, three are dropped.
            await wait_for(lambda: subscriber.dropped == 3, 5_000 * MS)
        assert "subscriber handlers are too slow: 1 event(s) dropped" in caplog.text
        assert "raise workers= or max_queued=" in caplog.text
        release.set()
        await wait_for(lambda: ran == [0, 1, 2], 5_000 * MS)
    finally:
        release.set()
        await asyncio.to_thread(subscriber.close)
        await publisher.close()


async def test_a_failing_handler_is_logged_and_the_next_runs(
    disc: DiscoveryFactory, caplog: pytest.LogCaptureFixture
) -> None:
    publisher = await coterie.Publisher("ticker", discovery=disc()).start()
    got: list[int] = []

    def picky(data: int) -> None:
        if data == 1:
            raise ValueError("one is odd")
        got.append(data)

    subscriber = coterie.sync.Subscriber("listener", discovery=disc())
    try:
        await asyncio.to_thread(subscriber.on, "n", picky)
        await publisher.wait_subscribers(1, timeout=5_000 * MS)
        with caplog.at_level(logging.ERROR, logger="coterie.sync"):
            await publisher.publish("n", 1)
            await publisher.publish("n", 2)
            await wait_for(lambda: got == [2], 5_000 * MS)
            # The pool may run the second event before the first one's log line is written.
            await wait_for(lambda: "one is odd" in caplog.text, 5_000 * MS)
        assert got == [2]
    finally:
        await asyncio.to_thread(subscriber.close)
        await publisher.close()


def test_bad_handlers_and_pool_sizes_are_refused() -> None:
    subscriber = coterie.sync.Subscriber("listener")

    async def coroutine_handler(data: Any) -> None: ...

    with pytest.raises(TypeError, match=r"use coterie\.Subscriber for coroutine handlers"):
        subscriber.on("tick", coroutine_handler)
    with pytest.raises(TypeError, match="not callable"):
        subscriber.on("tick", 42)  # type: ignore[call-overload]
    with pytest.raises(ValueError, match="non-empty string"):
        subscriber.on("", print)
    subscriber.close()
    with pytest.raises(NotRunningError):
        subscriber.on("tick", print)
    with pytest.raises(ValueError, match="workers must be a positive int"):
        coterie.sync.Subscriber("listener", workers=0)
    with pytest.raises(ValueError, match="max_queued must be a positive int"):
        coterie.sync.Subscriber("listener", max_queued=0)
