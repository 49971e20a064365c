"""Helpers shared by the subcommand modules.

Design: subcommands are synchronous ``run(args) -> int`` functions; the async
ones go through :func:`run_until_signal`, which runs a coroutine with SIGINT
and SIGTERM turned into a stop event, so every subcommand shuts down the same
clean way on Ctrl-C or ``kill``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
from collections.abc import Callable, Coroutine
from typing import Any, TypeAlias

__all__ = ["Subparsers", "run_until_signal"]

#: What ``register(subparsers)`` receives.
Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def run_until_signal(main: Callable[[asyncio.Event], Coroutine[Any, Any, int]]) -> int:
    """Run ``main(stop)`` in a new event loop; SIGINT/SIGTERM set ``stop``.

    Returns:
        What ``main`` returns.
    """

    async def runner() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, stop.set)
        try:
            return await main(stop)
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                with contextlib.suppress(NotImplementedError, RuntimeError):
                    loop.remove_signal_handler(sig)

    return asyncio.run(runner())
