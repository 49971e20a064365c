"""Pub/sub events per second: one publisher process, one subscriber process.

Design: after a warm-up that also proves the subscriber is connected, the
publisher sends N events as fast as its event loop allows, in batches of
100 with a yield between batches (both implementations alike). The rate is
taken at the subscriber: events received over the time from the first to
the last of them. Pub/sub is at most once, so events not received within the
bound are reported as a note, not hidden.
"""

from __future__ import annotations

import asyncio
import time

from bench.model import Context, Row
from bench.proc import BenchError, Group, Impl, Proc

TOPIC = "tick"
DATA = {"cardno": "4111111111111111", "amount": 42}


def coterie_has_pubsub() -> bool:
    """True once coterie exports Publisher and Subscriber."""
    import coterie

    return hasattr(coterie, "Publisher") and hasattr(coterie, "Subscriber")


async def _count(sub: Proc, want: int, bound: float, reset: bool = False) -> dict[str, float]:
    """Poll the subscriber's counters until ``want`` events or no progress for a while."""
    deadline = time.monotonic() + bound
    last_count, last_change = -1, time.monotonic()
    while True:
        sub.send({"cmd": "stats"})
        stats = await sub.expect("stats", timeout=5.0)
        count = int(stats["count"])
        now = time.monotonic()
        if count != last_count:
            last_count, last_change = count, now
        if count >= want or now > deadline or now - last_change > 1.0:
            if reset:
                sub.send({"cmd": "stats", "reset": True})
                await sub.expect("stats", timeout=5.0)
            return stats
        await asyncio.sleep(0.05)


async def _one(ctx: Context, impl: Impl) -> tuple[float, int]:
    p = ctx.params
    async with Group() as group:
        pub = await group.spawn(
            impl, "publisher", impl.config(name=f"{impl.name} publisher", broadcasts=[TOPIC])
        )
        sub = await group.spawn(
            impl, "subscriber", impl.config(name=f"{impl.name} subscriber", subscribesTo=[TOPIC])
        )
        await asyncio.gather(pub.ready(), sub.ready())
        await sub.expect("added", timeout=15.0)
        # Warm up until events arrive: the subscriber connects after discovery.
        deadline = time.monotonic() + 15.0
        while True:
            pub.send({"cmd": "publish_bench", "topic": TOPIC, "data": DATA, "n": 100})
            await pub.expect("published_bench", timeout=10.0)
            got = await _count(sub, 1, 0.3)
            if got["count"] > 0:
                break
            if time.monotonic() > deadline:
                raise BenchError(f"{impl.name} subscriber never received an event")
        warm = min(p.warmup, p.pubsub_n)
        pub.send({"cmd": "publish_bench", "topic": TOPIC, "data": DATA, "n": warm})
        await pub.expect("published_bench", timeout=30.0)
        await _count(sub, warm + 100, 5.0, reset=True)
        n = p.pubsub_n
        pub.send({"cmd": "publish_bench", "topic": TOPIC, "data": DATA, "n": n, "batch": 100})
        await pub.expect("published_bench", timeout=60.0)
        stats = await _count(sub, n, 30.0)
    count = int(stats["count"])
    rate = (count - 1) / stats["seconds"] if count > 1 and stats["seconds"] > 0 else 0.0
    return rate, n - count


async def run(ctx: Context) -> list[Row]:
    """Measure delivered events per second for every implementation."""
    row = Row("pubsub", "pub/sub events per second", "events/s", higher_is_better=True)
    impls = list(ctx.impls)
    if not coterie_has_pubsub():
        ctx.notes.append(
            "pub/sub: skipped for coterie: coterie.Publisher/Subscriber do not exist yet"
        )
        row.note = "coterie pub/sub not available in this build"
        impls = [i for i in impls if i.name != "coterie"]
    for round_no in range(ctx.params.rounds):
        for impl in ctx.order(round_no):
            if impl not in impls:
                continue
            rate, missing = await _one(ctx, impl)
            row.add(impl.name, rate)
            if missing:
                ctx.notes.append(f"pub/sub: {impl.name} did not deliver {missing} events")
            ctx.log(f"round {round_no + 1} {impl.name:7} pub/sub {rate:9.0f} events/s")
    return [row]
