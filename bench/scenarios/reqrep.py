"""Request/response throughput at 1, 10 and 100 in flight, and sequential latency.

Design: one responder and one requester per implementation, each its own
process, all started up front with different advertisement keys so the pairs
never mix. Each round runs every concurrency level on each pair in turn,
alternating which implementation goes first. The 1-in-flight run records
every request's latency, which gives the sequential p50 and p99.
"""

from __future__ import annotations

from bench.model import Context, Row
from bench.proc import Group, Proc
from bench.scenarios.common import bench, percentile, start_requester, start_responders

LEVELS = (1, 10, 100)


def rows() -> dict[str, Row]:
    """The rows this scenario fills."""
    out = {
        f"rr_c{c}": Row(
            f"rr_c{c}",
            f"req/resp throughput, {c} in flight",
            "req/s",
            higher_is_better=True,
        )
        for c in LEVELS
    }
    out["rr_c100"].target = ">= 2.5x cote"
    out["rr_c100"].check = lambda ours, theirs: None if theirs is None else ours >= 2.5 * theirs
    out["lat_p50"] = Row(
        "lat_p50",
        "sequential latency p50",
        "µs",
        higher_is_better=False,
        target="<= 1/3 of cote",
        check=lambda ours, theirs: None if theirs is None else ours <= theirs / 3,
    )
    out["lat_p99"] = Row("lat_p99", "sequential latency p99", "µs", higher_is_better=False)
    return out


async def run(ctx: Context) -> list[Row]:
    """Measure throughput and latency for every implementation."""
    p = ctx.params
    table = rows()
    async with Group() as group:
        requesters: dict[str, Proc] = {}
        for impl in ctx.impls:
            await start_responders(group, impl, 1)
            requesters[impl.name] = await start_requester(group, impl, 1, p.warmup)
        step = 0
        for round_no in range(p.rr_rounds):
            for level in LEVELS:
                step += 1
                for impl in ctx.order(step):
                    n = p.rr_n[level]
                    # No per-request timeout: neither side arms a timer per request.
                    result = await bench(
                        requesters[impl.name], n, level, timeout_ms=0, latencies=(level == 1)
                    )
                    if result["errors"]:
                        ctx.notes.append(
                            f"{impl.name}: {result['errors']} of {n} requests failed "
                            f"at {level} in flight"
                        )
                    rate = (n - result["errors"]) / result["seconds"]
                    table[f"rr_c{level}"].add(impl.name, rate)
                    if level == 1:
                        lat = [float(v) for v in result["latencies_us"]]
                        table["lat_p50"].add(impl.name, percentile(lat, 50))
                        table["lat_p99"].add(impl.name, percentile(lat, 99))
                    ctx.log(f"round {round_no + 1} {impl.name:7} c={level:<3} {rate:9.0f} req/s")
    return list(table.values())
