"""Idle resident memory per service, read from /proc.

Design: a responder and a requester (and a publisher and a subscriber when
the implementation has them), each its own process, connected and warmed
with a short burst of traffic, then left idle for a moment. VmRSS of each
process is read from ``/proc/<pid>/status``.
"""

from __future__ import annotations

import asyncio

from bench.model import Context, Row
from bench.proc import Group, Proc
from bench.scenarios.common import start_requester, start_responders
from bench.scenarios.pubsub import coterie_has_pubsub
from bench.system import rss_kib

ROLES = ("responder", "requester", "publisher", "subscriber")


async def run(ctx: Context) -> list[Row]:
    """Measure idle RSS of each role for every implementation."""
    p = ctx.params
    table = {
        role: Row(f"rss_{role}", f"idle RSS, {role}", "MiB", higher_is_better=False)
        for role in ROLES
    }
    pubsub_ok = coterie_has_pubsub()
    for round_no in range(1 if p.smoke else 2):
        for impl in ctx.order(round_no):
            async with Group() as group:
                procs: dict[str, Proc] = {}
                (procs["responder"],) = await start_responders(group, impl, 1)
                procs["requester"] = await start_requester(group, impl, 1, p.warmup)
                if impl.is_node or pubsub_ok:
                    procs["publisher"] = await group.spawn(
                        impl, "publisher", impl.config(name=f"{impl.name} publisher")
                    )
                    procs["subscriber"] = await group.spawn(
                        impl, "subscriber", impl.config(name=f"{impl.name} subscriber")
                    )
                    await asyncio.gather(procs["publisher"].ready(), procs["subscriber"].ready())
                await asyncio.sleep(p.rss_idle)
                for role, proc in procs.items():
                    kib = rss_kib(proc.pid)
                    if kib is not None:
                        table[role].add(impl.name, kib / 1024)
                ctx.log(
                    f"round {round_no + 1} {impl.name:7} idle RSS "
                    + ", ".join(
                        f"{r} {v / 1024:.1f}"
                        for r, v in ((r, rss_kib(pr.pid) or 0) for r, pr in procs.items())
                    )
                    + " MiB"
                )
    if not pubsub_ok:
        for role in ("publisher", "subscriber"):
            table[role].note = "coterie pub/sub not available in this build"
    return list(table.values())
