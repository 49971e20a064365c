"""Stopping child processes politely, then firmly.

Design: one coroutine shared by everything that runs children (``coterie
announce``, the nginx bridge, the demo): send a stop signal, wait a bounded
time, then ``SIGKILL`` the process (or its whole process group).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal

__all__ = ["stop_process"]


async def stop_process(
    process: asyncio.subprocess.Process | None,
    *,
    sig: signal.Signals = signal.SIGTERM,
    timeout: float = 5.0,
    group: bool = False,
) -> bool:
    """Stop a child with ``sig``; ``SIGKILL`` it if it is not gone in ``timeout`` s.

    Args:
        process: The child; ``None`` or an exited one is left alone.
        sig: The polite signal (``SIGTERM``; nginx wants ``SIGQUIT``).
        timeout: Seconds to wait before ``SIGKILL``.
        group: Kill the child's whole process group (it was started with
            ``start_new_session=True``).

    Returns:
        True when it had to be killed.
    """
    if process is None or process.returncode is not None:
        return False
    with contextlib.suppress(ProcessLookupError):
        process.send_signal(sig)
    try:
        async with asyncio.timeout(timeout):
            await process.wait()
        return False
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            if group:
                os.killpg(process.pid, signal.SIGKILL)
            else:
                os.kill(process.pid, signal.SIGKILL)
        await process.wait()
        return True
