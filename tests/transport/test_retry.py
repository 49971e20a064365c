"""The retry adapter draws the jitter of the one back-off and sleeps it."""

from __future__ import annotations

import asyncio

import pytest

from coterie.transport.retry import Retry


def test_each_wait_is_the_draw_times_the_doubling_delay() -> None:
    draws = iter([1.0, 0.5, 0.0, 0.25, 1.0])
    retry = Retry(0.1, 0.4, draw=lambda: next(draws))
    assert [retry.next_wait() for _ in range(4)] == [0.1, 0.1, 0.0, 0.1]
    retry.reset()
    assert retry.next_wait() == 0.1
    assert retry.most == 0.4


def test_a_draw_out_of_range_is_a_bug_said_plainly() -> None:
    retry = Retry(0.1, 0.4, draw=lambda: 2.0)
    with pytest.raises(ValueError, match="within"):
        retry.next_wait()


def test_the_default_draw_is_random_within_the_delay() -> None:
    waits = set()
    for _ in range(20):
        retry = Retry(1.0, 1.0)
        waits.add(retry.next_wait())
    assert all(0.0 <= w <= 1.0 for w in waits) and len(waits) > 1


async def test_pause_sleeps_the_drawn_wait() -> None:
    loop = asyncio.get_running_loop()
    retry = Retry(30.0, 30.0, draw=lambda: 0.0)  # a whole 30 s delay, drawn down to nothing
    started = loop.time()
    await asyncio.wait_for(retry.pause(), 5)
    assert loop.time() - started < 5
