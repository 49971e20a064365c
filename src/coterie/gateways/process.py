"""Child processes that never outlive their parent, stopped politely, then firmly.

Design: shared by everything that runs children (``coterie announce``, the
nginx bridge, the demo).

- :func:`die_with_parent` returns the argv that runs a command so that Linux
  sends it a signal when this process dies (``prctl(PR_SET_PDEATHSIG)``),
  however it dies, ``SIGKILL`` included. The ``prctl`` runs in a small
  trampoline, this Python started with ``-I -S``, that then ``exec``s the
  command in place (same pid). No ``preexec_fn``: Python code between
  ``fork`` and ``exec`` can deadlock the child while other threads run
  (asyncio's default executor, aiohttp's resolver), and it keeps
  :mod:`subprocess` off its faster ``vfork`` path. Elsewhere than Linux the
  argv is returned as it is (no such guarantee).
- :func:`stop_process` sends a stop signal, waits a bounded time, then kills
  the process with ``SIGKILL``; with ``group=True`` both signals go to its
  whole process group (a child started with ``start_new_session=True`` and
  what it started in turn).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import shutil
import signal
import sys
from collections.abc import Sequence

__all__ = ["die_with_parent", "stop_process"]

#: Run in the child as ``python -I -S -c _TRAMPOLINE parent signal argv...``:
#: ``prctl(PR_SET_PDEATHSIG, signal)`` (option 1), the signal at once when the
#: parent is already gone, then the command in place of the trampoline.
_TRAMPOLINE = """\
import ctypes, os, sys
parent, sig, argv = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3:]
z = ctypes.c_ulong(0)
if ctypes.CDLL(None).prctl(1, ctypes.c_ulong(sig), z, z, z) == 0 and os.getppid() != parent:
    os.kill(os.getpid(), sig)
try:
    os.execvp(argv[0], argv)
except OSError as exc:
    sys.exit(f"cannot run {argv[0]}: {exc.strerror}")
"""


def die_with_parent(argv: Sequence[str], sig: signal.Signals = signal.SIGTERM) -> list[str]:
    """The argv that runs ``argv`` and makes it receive ``sig`` when this process dies.

    Linux only (``prctl(PR_SET_PDEATHSIG)``, set by a trampoline that then
    ``exec``s ``argv``, so the child's pid is the command's); elsewhere, or
    without :data:`sys.executable`, ``argv`` itself. The kernel watches the
    thread that starts the child, so start it from one that lives as long as
    the process (with asyncio, the event loop's thread).

    Args:
        argv: The command and its arguments.
        sig: The signal for the child; ``SIGTERM`` lets it stop cleanly.

    Raises:
        ValueError: When ``argv`` is empty.
        FileNotFoundError: When ``argv[0]`` is no executable file, found on
            ``PATH`` or as given (checked here, as :mod:`subprocess` would
            when it starts the command itself).
    """
    if not argv:
        raise ValueError("die_with_parent needs a command to run, got an empty argv")
    if shutil.which(argv[0]) is None:
        raise FileNotFoundError(errno.ENOENT, "no such executable", argv[0])
    if not sys.platform.startswith("linux") or not sys.executable:
        return list(argv)
    return [sys.executable, "-I", "-S", "-c", _TRAMPOLINE, str(os.getpid()), str(int(sig)),
            *argv]  # fmt: skip


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
        group: Signal the child's whole process group, ``sig`` and
            ``SIGKILL`` alike (when the child leads one: it was started
            with ``start_new_session=True`` or ``process_group=0``).

    Returns:
        True when it had to be killed.
    """
    if process is None or process.returncode is not None:
        return False
    leader = group and _leads_group(process.pid)
    with contextlib.suppress(ProcessLookupError):
        if leader:
            os.killpg(process.pid, sig)
        else:
            process.send_signal(sig)
    try:
        async with asyncio.timeout(timeout):
            await process.wait()
        return False
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            if leader:
                os.killpg(process.pid, signal.SIGKILL)
            else:
                os.kill(process.pid, signal.SIGKILL)
        await process.wait()
        return True


def _leads_group(pid: int) -> bool:
    """Whether ``pid`` leads its own process group (so the group is its children's)."""
    try:
        return os.getpgid(pid) == pid
    except ProcessLookupError:
        return False
