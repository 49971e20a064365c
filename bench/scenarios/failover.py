"""Failover, the seed's fault scenario: kill -9 one of three busy responders.

Design: three responders (three processes) and one requester. The requester
runs a bench with many requests in flight, each bounded by a timeout; shortly
after it starts, the driver SIGKILLs one responder. A request is *lost* when
it is not answered within its bound (cote leaves requests sent to a dead
responder unanswered; the bound turns them into errors so the run ends). The
*stall* is the longest gap between two successive answers during the run.
"""

from __future__ import annotations

import asyncio
import itertools

from bench.model import Context, Row
from bench.proc import Group
from bench.scenarios.common import bench, start_requester, start_responders


async def run(ctx: Context) -> list[Row]:
    """Measure lost requests and the stall for every implementation."""
    p = ctx.params
    lost = Row(
        "failover_lost",
        f"failover: requests lost (sum over {p.rounds} runs)",
        "requests",
        higher_is_better=False,
        target="0",
        check=lambda ours, theirs: ours == 0,
        aggregate="sum",
    )
    stall = Row("failover_stall", "failover: longest stall", "ms", higher_is_better=False)
    rounds = max(1, p.rounds - 1) if not p.smoke else 1
    lost.label = f"failover: requests lost (sum over {rounds} run(s))"
    for round_no in range(rounds):
        for impl in ctx.order(round_no):
            async with Group() as group:
                responders = await start_responders(group, impl, 3)
                req = await start_requester(group, impl, 3, p.warmup)
                task = asyncio.ensure_future(
                    bench(
                        req,
                        p.failover_n,
                        p.failover_concurrency,
                        timeout_ms=p.failover_bound_ms,
                        completions=True,
                    )
                )
                await asyncio.sleep(p.failover_kill_after)
                finished_before_kill = task.done()
                responders[1].kill()
                result = await task
            errors = int(result["errors"])
            done = sorted(result["completions_us"])
            gaps = [b - a for a, b in itertools.pairwise(done)]
            longest = max(gaps, default=0) / 1000
            lost.add(impl.name, errors)
            stall.add(impl.name, longest)
            if finished_before_kill:
                ctx.notes.append(f"failover: {impl.name} finished before the kill (run too short)")
            ctx.log(
                f"round {round_no + 1} {impl.name:7} failover: {errors} lost of "
                f"{p.failover_n}, stall {longest:.1f} ms, run {result['seconds']:.2f} s"
            )
    lost.note = (
        f"{p.failover_n} requests, {p.failover_concurrency} in flight, 3 responders, "
        f"one SIGKILLed {p.failover_kill_after * 1000:.0f} ms in; "
        f"lost = unanswered within {p.failover_bound_ms} ms"
    )
    return [lost, stall]
