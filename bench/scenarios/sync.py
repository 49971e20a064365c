"""coterie.sync against coterie's asyncio requester, and against grpc's synchronous stub.

Design: one coterie echo responder serves two requesters, each its own
process: the asyncio requester (``bench/worker.py``) and a
``coterie.sync.Requester`` driven by threads (``bench/sync_client.py``).
Beside them, grpc's server (``bench/peers.py``) and its synchronous stub,
driven by the same threads. Each round measures, rotating who goes first:

- throughput: the asyncio requester at 100 in flight; coterie.sync and the
  grpc stub from 16 threads (what a gunicorn worker with 16 threads does);
- latency: every request timed, the asyncio requester at 1 in flight and
  coterie.sync from 1 thread; the p50 of each.

Goals (issue 24): 16 threads through coterie.sync reach at least half the
asyncio requester's throughput at 100 in flight, and coterie.sync's p50 is at
most the asyncio p50 plus 50 µs.
"""

from __future__ import annotations

from bench.model import Context, Row
from bench.proc import BenchError, Group, Impl, Proc
from bench.scenarios.common import bench, percentile, start_requester, start_responders, warm_up
from bench.scenarios.peers import start_peer

#: Threads of the blocking clients (a gunicorn worker's worth).
THREADS = 16
#: In flight for the asyncio requester.
ASYNC_IN_FLIGHT = 100
#: coterie.sync at 16 threads, as a share of the asyncio requester at 100 in flight.
THROUGHPUT_MIN = 0.5
#: coterie.sync's p50 at 1 in flight, at most the asyncio p50 plus this many µs.
P50_EXTRA_MAX_US = 50.0

COTERIE = Impl("coterie", "bench-coterie-sync")
SYNC = Impl("coterie", "bench-coterie-sync", module="bench.sync_client")
ASYNC = "asyncio requester"


def rows() -> dict[str, Row]:
    """The rows this scenario fills, in table order."""
    return {
        "sync_t16": Row(
            "sync_t16",
            f"coterie.sync from {THREADS} threads, vs asyncio at {ASYNC_IN_FLIGHT} in flight",
            "req/s",
            higher_is_better=True,
            reference=ASYNC,
            target=f">= {THROUGHPUT_MIN}x asyncio",
            check=lambda ours, theirs: None if theirs is None else ours >= THROUGHPUT_MIN * theirs,
            mark=THROUGHPUT_MIN,
        ),
        "sync_p50": Row(
            "sync_p50",
            "coterie.sync sequential latency p50, vs asyncio",
            "µs",
            higher_is_better=False,
            reference=ASYNC,
            target=f"<= asyncio + {P50_EXTRA_MAX_US:g} µs",
            check=lambda ours, theirs: (
                None if theirs is None else ours <= theirs + P50_EXTRA_MAX_US
            ),
        ),
        "sync_grpc_t16": Row(
            "sync_grpc_t16",
            f"coterie.sync from {THREADS} threads, vs grpc's sync stub",
            "req/s",
            higher_is_better=True,
            reference="grpc sync",
        ),
    }


async def _start_sync(group: Group, warmup: int) -> Proc:
    client = await group.spawn(
        SYNC, "coterie-sync", SYNC.config(name="coterie.sync requester"), label="coterie.sync"
    )
    await client.ready()
    await client.expect("added", timeout=30.0)
    await warm_up(client, warmup)
    return client


async def run(ctx: Context) -> list[Row]:
    """Measure the asyncio requester, coterie.sync and grpc's stub in turn."""
    p = ctx.params
    table = rows()
    if ctx.impl("coterie") is None:
        return []
    async with Group() as group:
        await start_responders(group, COTERIE, 1)
        clients = {
            ASYNC: await start_requester(group, COTERIE, 1, p.warmup),
            "coterie.sync": await _start_sync(group, p.warmup),
        }
        try:
            clients["grpc sync"] = await start_peer(
                group, "grpc", "grpc", p.warmup, client=("bench.sync_client", "grpc-sync")
            )
        except BenchError as exc:
            ctx.notes.append(f"grpc's sync stub left out: {exc} (pip install --group bench)")
        names = list(clients)
        for round_no in range(p.rounds):
            turn = round_no % len(names)
            for sequential in (False, True):
                for name in names[turn:] + names[:turn]:
                    if sequential and name == "grpc sync":
                        continue
                    level = 1 if sequential else (ASYNC_IN_FLIGHT if name == ASYNC else THREADS)
                    n = p.peers_seq_n if sequential else p.peers_n
                    result = await bench(
                        clients[name], n, level, timeout_ms=0, latencies=sequential
                    )
                    if result["errors"]:
                        ctx.notes.append(f"{name}: {result['errors']} of {n} requests failed")
                    rate = (n - result["errors"]) / result["seconds"]
                    if sequential:
                        p50 = percentile([float(v) for v in result["latencies_us"]], 50)
                        table["sync_p50"].add("coterie" if name != ASYNC else ASYNC, p50)
                        ctx.log(f"round {round_no + 1} {name:18} 1 in flight p50 {p50:7.0f} µs")
                        continue
                    if name == ASYNC:
                        table["sync_t16"].add(ASYNC, rate)
                    elif name == "grpc sync":
                        table["sync_grpc_t16"].add("grpc", rate)
                    else:
                        table["sync_t16"].add("coterie", rate)
                        table["sync_grpc_t16"].add("coterie", rate)
                    ctx.log(f"round {round_no + 1} {name:18} c={level:<3} {rate:9.0f} req/s")
    table["sync_t16"].note = (
        f"one coterie responder; the asyncio requester ({ASYNC_IN_FLIGHT} in flight) and "
        f"one shared coterie.sync.Requester ({THREADS} threads, bench/sync_client.py) "
        "take turns on it, each its own process"
    )
    table["sync_grpc_t16"].note = (
        f"grpc's server (bench/peers.py) and one channel's unary-unary stub shared by "
        f"{THREADS} threads, JSON bytes in and out"
    )
    return list(table.values())
