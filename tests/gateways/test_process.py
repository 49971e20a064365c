"""stop_process: polite signal first, SIGKILL after the bound."""

from __future__ import annotations

import asyncio
import os
import signal
import sys

from coterie.gateways.process import stop_process
from tests.helpers import MS, wait_for

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


#: Starts a grandchild (in the same process group), prints its pid, and waits.
WITH_GRANDCHILD = (
    "import subprocess, sys, time\n"
    "g = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(30)'])\n"
    "print(g.pid, flush=True)\n"
    "time.sleep(30)\n"
)


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie waiting for its reaper counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False


async def test_the_group_gets_the_polite_signal_too() -> None:
    # The leader stops on SIGTERM at once; its child stops only if it gets
    # SIGTERM too, that is when the whole group is signalled.
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", WITH_GRANDCHILD, stdout=asyncio.subprocess.PIPE,
        start_new_session=True,
    )  # fmt: skip
    assert proc.stdout is not None
    async with asyncio.timeout(10_000 * MS):
        grandchild = int(await proc.stdout.readline())
    try:
        assert _alive(grandchild)
        assert await stop_process(proc, timeout=5_000 * MS, group=True) is False
        assert proc.returncode == -signal.SIGTERM
        await wait_for(lambda: not _alive(grandchild), what="the grandchild got SIGTERM")
    finally:
        if _alive(grandchild):
            os.kill(grandchild, signal.SIGKILL)


async def test_group_falls_back_to_the_process_when_it_leads_none() -> None:
    # Started without a session of its own: its group is ours, never signalled.
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "import time; print('ready', flush=True); time.sleep(30)",
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None
    async with asyncio.timeout(10_000 * MS):
        assert await proc.stdout.readline() == b"ready\n"
    assert await stop_process(proc, timeout=5_000 * MS, group=True) is False
    assert proc.returncode == -signal.SIGTERM
