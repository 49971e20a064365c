"""The one timer helper on a real event loop: keep only moves earlier, after replaces."""

from __future__ import annotations

import asyncio

from coterie.transport.timer import Alarm
from tests.helpers import MS


async def test_keep_moves_earlier_never_later() -> None:
    loop = asyncio.get_running_loop()
    fired: list[float] = []
    alarm = Alarm(lambda: fired.append(loop.time()))
    now = loop.time()
    alarm.keep(now + 200 * MS)
    alarm.keep(now + 20 * MS)  # earlier: moves
    alarm.keep(now + 500 * MS)  # later: already covered, stays
    assert alarm.armed and alarm.at == now + 20 * MS
    assert alarm.covers(now + 30 * MS) and not alarm.covers(now + 10 * MS)
    await asyncio.sleep(100 * MS)
    assert len(fired) == 1 and fired[0] < now + 200 * MS
    assert not alarm.armed


async def test_keep_none_leaves_it_alone() -> None:
    alarm = Alarm(lambda: None)
    alarm.keep(None)
    assert not alarm.armed


async def test_after_replaces_and_cancel_disarms() -> None:
    fired: list[str] = []
    alarm = Alarm(lambda: fired.append("x"))
    alarm.after(10 * MS)
    alarm.after(500 * MS)  # replaces the earlier one
    await asyncio.sleep(60 * MS)
    assert fired == []
    alarm.cancel()
    assert not alarm.armed
    alarm.cancel()  # twice is harmless


async def test_callback_may_rearm_itself() -> None:
    ticks: list[int] = []

    def tick() -> None:
        ticks.append(1)
        if len(ticks) < 3:
            alarm.after(5 * MS)

    alarm = Alarm(tick)
    alarm.after(5 * MS)
    for _ in range(200):
        if len(ticks) == 3:
            break
        await asyncio.sleep(5 * MS)
    assert len(ticks) == 3 and not alarm.armed
