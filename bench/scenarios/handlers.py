"""``async def`` and typed handlers against a plain one: throughput at 100 in flight.

Design: three coterie pairs (a responder and a requester each, every one its
own process), alike but for the responder's echo handler: a plain function in
one, an ``async def`` that never waits in another (``bench/worker.py``,
``"handler": "async"``), and in the third a typed echo taking and returning
msgspec Structs (``"handler": "msgspec"``, ``bench/typed_handler.py``; target
0.9x). Each round measures all at 100 in flight, in alternating order, so all
see the same machine. Many short rounds (20 in the
full run) show the spread as well as the median: besides the median ratio
(target 0.95x), the slowest async round against the async median (target
0.8x) says whether the async path ever falls into a slow mode.
"""

from __future__ import annotations

import statistics

from bench.model import Context, Row
from bench.proc import Group, Impl, Proc
from bench.scenarios.common import bench, start_requester, start_responders
from bench.system import cpu_seconds

#: The async handler keeps at least this share of the plain handler's throughput.
ASYNC_MIN = 0.95
#: The typed (msgspec) handler keeps at least this share of the plain handler's throughput.
TYPED_MIN = 0.9
#: No async round falls below this share of the async median.
SPREAD_MIN = 0.8
PLAIN = "plain handler"
TYPED = "msgspec"
#: Requests per round (the full run); rounds come from ``Params.handler_rounds``.
LEVEL = 100


def rows() -> dict[str, Row]:
    """The rows this scenario fills."""
    return {
        "async_c100": Row(
            "async_c100",
            "async def handler, 100 in flight",
            "req/s",
            higher_is_better=True,
            reference=PLAIN,
            target=f">= {ASYNC_MIN}x plain handler",
            check=lambda ours, theirs: None if theirs is None else ours >= ASYNC_MIN * theirs,
            mark=ASYNC_MIN,
            note="an async def echo that never waits, against the same echo as a plain function",
        ),
        "typed_c100": Row(
            "typed_c100",
            "typed handler (msgspec), 100 in flight",
            "req/s",
            higher_is_better=True,
            reference=PLAIN,
            target=f">= {TYPED_MIN}x plain handler",
            check=lambda ours, theirs: None if theirs is None else ours >= TYPED_MIN * theirs,
            mark=TYPED_MIN,
            note="a msgspec Struct in and out (validated request, encoded answer), against "
            "the plain echo's dict",
        ),
        "async_spread": Row(
            "async_spread",
            "async def handler, slowest round / median",
            "ratio",
            higher_is_better=True,
            reference="",
            target=f">= {SPREAD_MIN}",
            check=lambda ours, _: ours >= SPREAD_MIN,
            aggregate="min",
        ),
    }


async def run(ctx: Context) -> list[Row]:
    """Measure both handler kinds, alternating, for ``handler_rounds`` rounds."""
    p = ctx.params
    table = rows()
    if ctx.impl("coterie") is None:
        return []
    pairs = {
        PLAIN: Impl("coterie", "bench-coterie-plain"),
        "async": Impl("coterie", "bench-coterie-async"),
        TYPED: Impl("coterie", "bench-coterie-typed"),
    }
    async_rates: list[float] = []
    #: CPU seconds per request of each kind's responder, one sample per round.
    cpu: dict[str, list[float]] = {kind: [] for kind in pairs}
    async with Group() as group:
        requesters: dict[str, Proc] = {}
        responders: dict[str, Proc] = {}
        for kind, impl in pairs.items():
            extra = {"handler": kind} if kind != PLAIN else {}
            (responders[kind],) = await start_responders(group, impl, 1, **extra)
            requesters[kind] = await start_requester(group, impl, 1, p.warmup)
        n = p.rr_n[LEVEL] // 2
        for round_no in range(p.handler_rounds):
            kinds = list(requesters) if round_no % 2 == 0 else list(reversed(requesters))
            for kind in kinds:
                before = cpu_seconds(responders[kind].pid)
                result = await bench(requesters[kind], n, LEVEL, timeout_ms=0)
                after = cpu_seconds(responders[kind].pid)
                if before is not None and after is not None:
                    cpu[kind].append((after - before) / n)
                rate = (n - result["errors"]) / result["seconds"]
                if kind == "async":
                    async_rates.append(rate)
                    table["async_c100"].ours.append(rate)
                elif kind == TYPED:
                    table["typed_c100"].ours.append(rate)
                else:
                    table["async_c100"].theirs.append(rate)
                    table["typed_c100"].theirs.append(rate)
                ctx.log(f"round {round_no + 1} {kind:15} c={LEVEL:<3} {rate:9.0f} req/s")
    if cpu[PLAIN] and cpu["async"] and cpu[TYPED]:
        per_request = (
            "; responder CPU per request (median of rounds): "
            f"plain {statistics.median(cpu[PLAIN]) * 1e6:.1f} µs, "
        )
        table["async_c100"].note += (
            per_request + f"async {statistics.median(cpu['async']) * 1e6:.1f} µs"
        )
        table["typed_c100"].note += (
            per_request + f"typed {statistics.median(cpu[TYPED]) * 1e6:.1f} µs"
        )
    if async_rates:
        median = statistics.median(async_rates)
        table["async_spread"].ours = [min(async_rates) / median]
        table["async_spread"].note = (
            f"{len(async_rates)} rounds: "
            + ", ".join(f"{r / 1000:.0f}k" for r in async_rates)
            + " req/s"
        )
    return list(table.values())
