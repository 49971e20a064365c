"""stop_process: polite signal first, SIGKILL after the bound."""

from __future__ import annotations

import asyncio
import signal
import sys

from coterie.gateways.process import stop_process
from tests.helpers import MS

IGNORES_TERM = (
    "import signal, sys, time\n"
    "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    "print('ready', flush=True)\n"
    "time.sleep(30)\n"
)


async def _child(code: str) -> asyncio.subprocess.Process:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", code, stdout=asyncio.subprocess.PIPE, start_new_session=True
    )
    assert proc.stdout is not None
    async with asyncio.timeout(10_000 * MS):
        assert await proc.stdout.readline() == b"ready\n"
    return proc


async def test_a_child_that_obeys_is_not_killed() -> None:
    proc = await _child("import time; print('ready', flush=True); time.sleep(30)")
    assert await stop_process(proc, timeout=5_000 * MS) is False
    assert proc.returncode == -signal.SIGTERM


async def test_a_child_that_ignores_the_signal_is_killed_after_the_bound() -> None:
    proc = await _child(IGNORES_TERM)
    assert await stop_process(proc, timeout=200 * MS, group=True) is True
    assert proc.returncode == -signal.SIGKILL


async def test_nothing_to_stop() -> None:
    assert await stop_process(None) is False
