"""Child processes that never outlive their parent, stopped politely, then firmly.

Design: shared by everything that runs children (``coterie announce``, the
nginx bridge, the demo).

- :func:`die_with_parent` is a ``preexec_fn`` that asks Linux to send the child
  a signal when its parent dies (``prctl(PR_SET_PDEATHSIG)``), however the
  parent dies, ``SIGKILL`` included. Elsewhere it is ``None`` (no such
  guarantee).
- :func:`stop_process` sends a stop signal, waits a bounded time, then kills
  the process (or its whole process group) with ``SIGKILL``.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import sys
from collections.abc import Callable

__all__ = ["die_with_parent", "stop_process"]

#: ``prctl`` option: the signal the calling process gets when its parent dies.
_PR_SET_PDEATHSIG = 1
#: prctl's unused arguments, as the unsigned longs it reads.
_ZEROS = (ctypes.c_ulong(0), ctypes.c_ulong(0), ctypes.c_ulong(0))


def die_with_parent(sig: signal.Signals = signal.SIGTERM) -> Callable[[], None] | None:
    """A ``preexec_fn`` that makes the child receive ``sig`` when this process dies.

    Linux only (``prctl(PR_SET_PDEATHSIG)``); ``None`` elsewhere, which
    ``subprocess`` and asyncio take as "no preexec_fn". The kernel watches the
    thread that starts the child, so start it from one that lives as long as
    the process (with asyncio, the event loop's thread). When this process is
    already gone by the time the child runs the function, the child signals
    itself.

    Args:
        sig: The signal for the child; ``SIGTERM`` lets it stop cleanly.
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()
    signum = int(sig)

    def preexec() -> None:
        # Runs in the child between fork and exec: no logging, no raising.
        if prctl(_PR_SET_PDEATHSIG, ctypes.c_ulong(signum), *_ZEROS) == 0 and (
            os.getppid() != parent
        ):
            os.kill(os.getpid(), signum)

    return preexec


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
