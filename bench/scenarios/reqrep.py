"""Request/response throughput at 1, 10 and 100 in flight, and sequential latency.

Design: one responder and one requester per implementation, each its own
process, all started up front with different advertisement keys so the pairs
never mix. Beside them runs the Python ceiling: a bare uvloop echo of
length-prefixed messages the size of coterie's request frame, between two
processes (``bench/echo.py``), driven by the same request loop as coterie's
requester. Each round runs every concurrency level on each pair in turn,
rotating which one goes first, so coterie, cote and the echo are measured
alternately under the same conditions. The 1-in-flight run records every
request's latency, which gives the sequential p50 and p99. coterie's
throughput at 100 in flight and its p50 are reported against cote and
against the echo.

A second coterie pair runs with Prometheus metrics on (``metrics=True`` on
both components, :mod:`coterie.metrics`) and takes its turn at 100 in
flight: its throughput against the plain pair's is the cost of metrics.
"""

from __future__ import annotations

import statistics

from bench.model import Context, Row
from bench.proc import Group, Impl, Proc
from bench.scenarios.common import (
    ECHO,
    bench,
    percentile,
    request_frame_size,
    start_echo,
    start_requester,
    start_responders,
)
from bench.system import cpu_seconds

LEVELS = (1, 10, 100)

#: coterie against the bare echo (issue 19): at least this share of its
#: throughput at 100 in flight, at most this multiple of its p50.
ECHO_THROUGHPUT_MIN = 0.4
ECHO_P50_MAX = 1.2
#: coterie against cote at 100 in flight (issue 19).
COTE_THROUGHPUT_MIN = 2.0
#: coterie with metrics on keeps at least this share of its throughput.
METRICS_THROUGHPUT_MIN = 0.95
#: How the metrics-on pair is reported against the plain one.
METRICS_OFF = "metrics off"


def rows() -> dict[str, Row]:
    """The rows this scenario fills, in table order."""
    out = {
        f"rr_c{c}": Row(
            f"rr_c{c}",
            f"req/resp throughput, {c} in flight",
            "req/s",
            higher_is_better=True,
        )
        for c in LEVELS
    }
    out["rr_c100"].target = f">= {COTE_THROUGHPUT_MIN:g}x cote"
    out["rr_c100"].check = lambda ours, theirs: (
        None if theirs is None else ours >= COTE_THROUGHPUT_MIN * theirs
    )
    out["rr_c100"].mark = COTE_THROUGHPUT_MIN
    out["rr_c100_echo"] = Row(
        "rr_c100_echo",
        "req/resp throughput, 100 in flight, vs bare echo",
        "req/s",
        higher_is_better=True,
        reference=ECHO.name,
        target=f">= {ECHO_THROUGHPUT_MIN}x echo",
        check=lambda ours, theirs: None if theirs is None else ours >= ECHO_THROUGHPUT_MIN * theirs,
        mark=ECHO_THROUGHPUT_MIN,
    )
    out["lat_p50"] = Row(
        "lat_p50",
        "sequential latency p50",
        "µs",
        higher_is_better=False,
        target="<= 1/3 of cote",
        check=lambda ours, theirs: None if theirs is None else ours <= theirs / 3,
        mark=3.0,
    )
    out["lat_p50_echo"] = Row(
        "lat_p50_echo",
        "sequential latency p50, vs bare echo",
        "µs",
        higher_is_better=False,
        reference=ECHO.name,
        target=f"<= {ECHO_P50_MAX}x echo",
        check=lambda ours, theirs: None if theirs is None else ours <= ECHO_P50_MAX * theirs,
        mark=1 / ECHO_P50_MAX,
    )
    out["lat_p99"] = Row("lat_p99", "sequential latency p99", "µs", higher_is_better=False)
    out["rr_c100_metrics"] = Row(
        "rr_c100_metrics",
        "req/resp throughput, 100 in flight, metrics on",
        "req/s",
        higher_is_better=True,
        reference=METRICS_OFF,
        target=f">= {METRICS_THROUGHPUT_MIN}x metrics off",
        check=lambda ours, theirs: (
            None if theirs is None else ours >= METRICS_THROUGHPUT_MIN * theirs
        ),
        mark=METRICS_THROUGHPUT_MIN,
        note="the same coterie pair with metrics=True on both components",
    )
    return out


def _median(samples: list[float]) -> str:
    return f"{statistics.median(samples):,.0f}" if samples else "-"


async def run(ctx: Context) -> list[Row]:
    """Measure throughput and latency for every implementation and the echo."""
    p = ctx.params
    table = rows()
    size = request_frame_size()
    echo_rates: dict[int, list[float]] = {level: [] for level in LEVELS}
    echo_p99: list[float] = []
    #: name -> [(client, server) CPU seconds per request], at 100 in flight.
    cpu: dict[str, list[tuple[float, float]]] = {}
    async with Group() as group:
        requesters: dict[str, Proc] = {}
        servers: dict[str, int] = {}
        for impl in ctx.impls:
            (server,) = await start_responders(group, impl, 1)
            servers[impl.name] = server.pid
            requesters[impl.name] = await start_requester(group, impl, 1, p.warmup)
        requesters[ECHO.name], echo_ready = await start_echo(group, size, p.warmup)
        servers[ECHO.name] = int(echo_ready["pid"])
        metered = ctx.impl("coterie")
        if metered is not None:
            metered = Impl(
                "coterie+metrics", "bench-coterie-metrics", discovery=dict(metered.discovery)
            )
            await start_responders(group, metered, 1, metrics=True)
            requesters[metered.name] = await start_requester(
                group, metered, 1, p.warmup, metrics=True
            )
        step = 0
        for round_no in range(p.rr_rounds):
            for level in LEVELS:
                step += 1
                # The metrics-on pair is measured at 100 in flight only.
                names = [n for n in requesters if level == 100 or n != "coterie+metrics"]
                turn = step % len(names)
                for name in names[turn:] + names[:turn]:
                    n = p.rr_n[level]
                    pids = (requesters[name].pid, servers.get(name, 0))
                    before = [cpu_seconds(pid) for pid in pids]
                    # No per-request timeout: neither side arms a timer per request.
                    result = await bench(
                        requesters[name], n, level, timeout_ms=0, latencies=(level == 1)
                    )
                    after = [cpu_seconds(pid) for pid in pids]
                    if level == 100:
                        spent = [
                            (a - b) / n
                            for a, b in zip(after, before, strict=True)
                            if a is not None and b is not None
                        ]
                        if len(spent) == 2:
                            cpu.setdefault(name, []).append((spent[0], spent[1]))
                    if result["errors"]:
                        ctx.notes.append(
                            f"{name}: {result['errors']} of {n} requests failed "
                            f"at {level} in flight"
                        )
                    rate = (n - result["errors"]) / result["seconds"]
                    lat = [float(v) for v in result.get("latencies_us") or []]
                    if name == "coterie+metrics":
                        table["rr_c100_metrics"].add("coterie", rate)
                    elif name == ECHO.name:
                        echo_rates[level].append(rate)
                        if level == 100:
                            table["rr_c100_echo"].add(name, rate)
                        if level == 1:
                            table["lat_p50_echo"].add(name, percentile(lat, 50))
                            echo_p99.append(percentile(lat, 99))
                    else:
                        table[f"rr_c{level}"].add(name, rate)
                        if level == 1:
                            table["lat_p50"].add(name, percentile(lat, 50))
                            table["lat_p99"].add(name, percentile(lat, 99))
                        if name == "coterie" and level == 100:
                            table["rr_c100_echo"].add(name, rate)
                            table["rr_c100_metrics"].add(METRICS_OFF, rate)
                        if name == "coterie" and level == 1:
                            table["lat_p50_echo"].add(name, percentile(lat, 50))
                    ctx.log(f"round {round_no + 1} {name:15} c={level:<3} {rate:9.0f} req/s")
    loop = echo_ready.get("loop", "?")
    echo = (
        f"bare {loop} echo between two processes: {size}-byte messages (coterie's "
        "request frame) behind a 4-byte length, written back one write per read, with "
        "the same request loop as coterie's requester; the echo did "
        f"{_median(echo_rates[1])} / {_median(echo_rates[10])} / {_median(echo_rates[100])} "
        f"req/s at 1 / 10 / 100 in flight, p99 {_median(echo_p99)} µs"
    )
    table["rr_c100_echo"].note = echo
    if cpu:
        table["rr_c100"].note = "CPU per request at 100 in flight, client + server: " + ", ".join(
            f"{name} {statistics.median(c for c, _ in v) * 1e6:.1f} + "
            f"{statistics.median(s for _, s in v) * 1e6:.1f} µs"
            for name, v in cpu.items()
        )
    table["lat_p50_echo"].note = "the same echo, 1 in flight, every request timed"
    if loop != "uvloop":
        ctx.notes.append(f"the echo ran on {loop}: uvloop is not installed")
    return list(table.values())
