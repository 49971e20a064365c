"""Helpers the scenarios share: a connected requester, the echo pair, percentiles."""

from __future__ import annotations

import asyncio
import math
import os
from typing import Any

from bench.proc import BenchError, Group, Impl, Proc

#: The request every scenario sends: the seed's card validation, echoed back.
REQUEST = {"type": "echo", "cardno": "4111111111111111"}

#: The bare uvloop echo (``bench/echo.py``): the Python ceiling.
ECHO = Impl("echo", "bench-echo", module="bench.echo")


def request_frame_size() -> int:
    """Bytes of coterie's frame for :data:`REQUEST` with a bench-sized id (``pid:nnnnnn``).

    Works with the coterie tree being measured, before and after the
    ``coterie.protocol`` restructuring.
    """
    try:
        from coterie.protocol.messages import encode_request
    except ImportError:  # coterie before the protocol package
        from coterie.wire.axon import encode_request  # type: ignore[no-redef]
    return len(encode_request(REQUEST, f"{os.getpid()}:{100_000}"))


async def start_responders(group: Group, impl: Impl, count: int, **config: Any) -> list[Proc]:
    """Start ``count`` echo responders, each its own process, and wait until ready."""
    procs = [
        await group.spawn(
            impl,
            "responder",
            impl.config(name=f"{impl.name} responder {i + 1}", respondsTo=["echo"], **config),
            label=f"{impl.name} responder {i + 1}",
        )
        for i in range(count)
    ]
    await asyncio.gather(*(p.ready() for p in procs))
    return procs


async def start_requester(
    group: Group, impl: Impl, responders: int, warmup: int, **config: Any
) -> Proc:
    """Start a requester, wait until it has found ``responders`` and warm it up.

    Raises:
        BenchError: When it does not find them, or the warm-up fails.
    """
    req = await group.spawn(impl, "requester", impl.config(name=f"{impl.name} requester", **config))
    await req.ready()
    seen: set[str] = set()
    while len(seen) < responders:
        event = await req.expect("added", timeout=15.0)
        seen.add(str(event.get("id")))
    await asyncio.sleep(0.2)  # links are made right after discovery
    await warm_up(req, warmup)
    return req


async def warm_up(req: Proc, warmup: int) -> None:
    """Send ``warmup`` requests, 50 in flight.

    Raises:
        BenchError: When any fails.
    """
    if warmup:
        result = await bench(req, warmup, concurrency=min(50, warmup), timeout_ms=10000)
        if result["errors"]:
            raise BenchError(f"{req.label}: {result['errors']} of {warmup} warm-up requests failed")


async def start_echo(
    group: Group, size: int, warmup: int, batch: bool = True
) -> tuple[Proc, dict[str, Any]]:
    """Start the echo server and a connected, warmed-up echo client.

    ``batch=False`` writes every message on its own (see ``bench/echo.py``).

    Returns:
        The client (it takes the same ``bench`` command as a requester) and
        the server's ``ready`` event (``port``, ``loop``).

    Raises:
        BenchError: When either side fails to start or the warm-up fails.
    """
    server = await group.spawn(ECHO, "server", {"batch": batch}, label="echo server")
    ready = await server.ready()
    client = await group.spawn(
        ECHO, "client", {"port": ready["port"], "size": size, "batch": batch}, label="echo client"
    )
    await client.ready()
    await client.expect("added", timeout=15.0)
    await warm_up(client, warmup)
    return client, ready


async def bench(
    req: Proc,
    n: int,
    concurrency: int,
    timeout_ms: int = 10000,
    latencies: bool = False,
    completions: bool = False,
) -> dict[str, Any]:
    """Run the requester's ``bench`` command and return its result."""
    req.send(
        {
            "cmd": "bench",
            "n": n,
            "concurrency": concurrency,
            "req": REQUEST,
            "timeout": timeout_ms,
            "latencies": latencies,
            "completions": completions,
        }
    )
    # Bounded: at least 500 requests a second, plus a few request timeouts
    # (or 30 s when requests have no timeout of their own).
    bound = 20.0 + n / 500 + (3 * timeout_ms / 1000 if timeout_ms else 30.0)
    return await req.expect("bench", timeout=min(bound, 300.0))


def percentile(values: list[float], pct: float) -> float:
    """The ``pct`` percentile (nearest rank) of ``values``."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, math.ceil(pct / 100 * len(ordered)) - 1))
    return float(ordered[rank])
