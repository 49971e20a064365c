"""The request loop every Python bench client runs: C in flight until N are answered.

Design: ``bench/worker.py`` (coterie's requester) and ``bench/echo.py`` (the
bare uvloop echo client) both call :func:`drive` with their own awaitable
``send``, so the two are timed by exactly the same code: C coroutines, each
awaiting one ``send(req, timeout=bound)`` after another, with the clock read
around every call. This module imports nothing from coterie, so the echo
stays bare and the loop works against any coterie tree.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any


async def drive(
    send: Callable[..., Awaitable[Any]],
    req: Any,
    n: int,
    concurrency: int,
    bound: float | None = None,
    latencies: bool = False,
    completions: bool = False,
) -> dict[str, Any]:
    """Answer ``n`` requests with ``concurrency`` in flight; the ``bench`` event.

    Args:
        send: ``send(req, timeout=bound)``, awaited once per request.
        req: What each request carries.
        n: Requests in all.
        concurrency: Requests in flight at once (at most ``n``).
        bound: Per-request timeout in seconds, or ``None``.
        latencies: Time every request (``latencies_us``).
        completions: Record when each answer came (``completions_us``).
    """
    concurrency = max(1, min(concurrency, n))
    lat = [0.0] * n if latencies else None
    done_at: list[int] | None = [] if completions else None
    clock = time.perf_counter_ns
    state = {"next": 0, "errors": 0}
    started = clock()

    async def worker() -> None:
        while state["next"] < n:
            i = state["next"]
            state["next"] = i + 1
            t0 = clock()
            ok = True
            try:
                await send(req, timeout=bound)
            except Exception:
                state["errors"] += 1
                ok = False
            t1 = clock()
            if lat is not None:
                lat[i] = (t1 - t0) / 1000
            if done_at is not None and ok:
                done_at.append((t1 - started) // 1000)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    out: dict[str, Any] = {
        "event": "bench",
        "n": n,
        "errors": state["errors"],
        "seconds": (clock() - started) / 1e9,
    }
    if lat is not None:
        out["latencies_us"] = [round(v) for v in lat]
    if done_at is not None:
        out["completions_us"] = done_at
    return out
