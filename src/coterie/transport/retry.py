"""Retrying with the one back-off: the adapter that draws the jitter (asyncio).

Design: the rule (a delay doubling to a ceiling, reset on success, full
jitter) is :class:`coterie.protocol.backoff.Backoff`, which draws nothing.
This adapter draws the jitter (``random.random`` unless a test injects a
draw) and sleeps. The etcd and Redis discovery media retry through it, and
the peer set draws its reconnect jitter with :func:`jitter`.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable

from coterie.protocol.backoff import Backoff

__all__ = ["Retry", "jitter"]

#: A random value in ``[0, 1)``: the jitter of one wait.
jitter: Callable[[], float] = random.random


class Retry:
    """Waits between the attempts of one retry loop.

    Args:
        first: The first delay, in seconds.
        most: The largest delay, in seconds.
        draw: Gives the jitter of each wait, in ``[0, 1]``; random by default.
    """

    __slots__ = ("_draw", "backoff")

    def __init__(self, first: float, most: float, *, draw: Callable[[], float] = jitter) -> None:
        self.backoff = Backoff(first, most)
        self._draw = draw

    @property
    def most(self) -> float:
        """The largest delay, in seconds."""
        return self.backoff.most

    def next_wait(self) -> float:
        """An attempt failed: the seconds to wait before the next one."""
        return self.backoff.failed(self._draw())

    async def pause(self) -> None:
        """An attempt failed: wait (with jitter) before the next one."""
        await asyncio.sleep(self.next_wait())

    def reset(self) -> None:
        """An attempt worked: the next failure waits the shortest delay again."""
        self.backoff.reset()
