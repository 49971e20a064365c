"""The results: a table on stdout, docs/benchmarks.md, and a PNG chart.

Design: every output is built from the same list of :class:`~bench.model.Row`.
The ratio column is always coterie / reference (cote, nginx for the HTTP
rows, the bare uvloop echo for the "vs bare echo" rows, pyzmq or grpc.aio
for the peer rows, the plain handler for the async handler's); the "better"
column restates it as how many times better coterie is, whichever way the
metric points, and that is what the chart plots.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from bench.model import Row


def fmt(value: float | None, unit: str = "") -> str:
    """A number for the table: 3 significant digits, thousands separated."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if unit == "requests":
        return f"{value:,.0f}"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def better(row: Row) -> float | None:
    """How many times better coterie is than the reference (>1 is better)."""
    ours, theirs = row.value, row.ref_value
    if ours is None or theirs is None:
        return None
    if row.higher_is_better:
        return ours / theirs if theirs else None
    return theirs / ours if ours else None


def met_text(row: Row) -> str:
    """Target verdict for the table."""
    if not row.target:
        return ""
    if row.met is None:
        return "n/a"
    return "yes" if row.met else "NO"


HEADERS = ("scenario", "unit", "coterie", "reference", "ratio c/ref", "better", "target", "met")


def table_rows(rows: list[Row]) -> list[tuple[str, ...]]:
    """The table as strings."""
    out = []
    for row in rows:
        ref = fmt(row.ref_value, row.unit)
        if row.ref_value is not None:
            ref = f"{ref} ({row.reference})"
        ratio = row.ratio
        b = better(row)
        out.append(
            (
                row.label,
                row.unit,
                fmt(row.value, row.unit),
                ref,
                f"{ratio:.2f}" if ratio is not None else "-",
                f"{b:.2f}x" if b is not None else "-",
                row.target,
                met_text(row),
            )
        )
    return out


def print_table(rows: list[Row], notes: list[str], title: str) -> None:
    """Print the table to stdout with rich when installed, plain text otherwise."""
    body = table_rows(rows)
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        widths = [max(len(h), *(len(r[i]) for r in body)) for i, h in enumerate(HEADERS)]
        print(title)
        print("  ".join(h.ljust(w) for h, w in zip(HEADERS, widths, strict=True)))
        for r in body:
            print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))
    else:
        table = Table(title=title)
        for i, h in enumerate(HEADERS):
            table.add_column(h, justify="left" if i in (0, 1, 6) else "right")
        for r in body:
            style = "red" if r[-1] == "NO" else None
            table.add_row(*r, style=style)
        Console(width=160).print(table)
    for note in notes:
        print(f"note: {note}")


def markdown_table(rows: list[Row]) -> str:
    """The table as GitHub markdown."""
    lines = ["| " + " | ".join(HEADERS) + " |", "|" + "|".join("---" for _ in HEADERS) + "|"]
    for r in table_rows(rows):
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in r) + " |")
    return "\n".join(lines)


def write_chart(rows: list[Row], path: Path, title: str) -> bool:
    """Plot "times better than the reference" per metric, log scale. False without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    data = [(row, better(row)) for row in rows]
    data = [(row, b) for row, b in data if b is not None and b > 0]
    if not data:
        return False
    labels = [f"{row.label}\n({'vs ' + row.reference})" for row, _ in data]
    values = [b for _, b in data]
    colors = ["#2a9d8f" if v >= 1 else "#e76f51" for v in values]
    fig, ax = plt.subplots(figsize=(10, 0.55 * len(data) + 1.6))
    ys = list(range(len(data)))[::-1]
    ax.barh(ys, values, color=colors)
    ax.set_xscale("log")
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

    ticks = [0.25, 0.5, 1, 2, 3, 5, 10, 20, 50, 100]
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}x"))
    ax.axvline(1.0, color="black", linewidth=1)
    for y, v in zip(ys, values, strict=True):
        ax.text(v, y, f" {v:.2f}x", va="center", fontsize=8)
    for y, (row, _) in zip(ys, data, strict=True):
        if row.mark is not None:
            ax.plot([row.mark], [y], marker="|", color="black", markersize=18)
    ax.set_yticks(ys)
    ax.set_yticklabels(labels, fontsize=8)
    ax.set_xlabel("times better than the reference (log scale; >1: coterie better; | target)")
    ax.set_title(title, fontsize=10)
    lo, hi = min(values), max(values)
    ax.set_xlim(min(0.5, lo / 1.5), max(4.0, hi * 2.0))
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def write_doc(
    rows: list[Row],
    notes: list[str],
    conditions: dict[str, Any],
    params: dict[str, Any],
    path: Path,
    chart: Path | None,
    command: str,
    elapsed: float,
) -> None:
    """Write docs/benchmarks.md."""
    cond = "\n".join(f"| {k} | {v} |" for k, v in conditions.items())
    param_lines = "\n".join(f"| {k} | {v} |" for k, v in params.items())
    note_lines = "\n".join(f"- {n}" for n in notes)
    chart_md = f"![coterie against the references]({chart.name})\n" if chart else ""
    targets = [r for r in rows if r.target]
    target_lines = "\n".join(
        f"- {r.label}: target {r.target}: **{met_text(r)}** "
        f"(coterie {fmt(r.value, r.unit)} {r.unit}"
        + (
            f", {r.reference} {fmt(r.ref_value, r.unit)} {r.unit})"
            if r.ref_value is not None
            else ")"
        )
        for r in targets
    )
    row_notes = "\n".join(f"- {r.label}: {r.note}" for r in rows if r.note)
    text = f"""# Benchmarks

coterie against real Node cote {conditions.get("cote", "1.2.0")} (and nginx for the HTTP
rows), and against the Python ceiling: a bare uvloop echo between two
processes. Measured in one run on one machine, alternating between the
implementations. Produced by `{command}` in {elapsed:.0f} s; rerun it to
regenerate this page and the chart.

{chart_md}
## Results

{markdown_table(rows)}

"ratio c/ref" is coterie / reference (cote, nginx, the bare echo in the
"vs bare echo" rows, which repeat coterie's numbers from the row above them,
pyzmq or grpc.aio in the peer rows, or a plain handler for the async one);
"better" says how many times better coterie is, whichever way the metric
points (higher throughput, lower latency, time or memory). Values are medians
over the rounds, except lost requests (a sum).

### Targets

{target_lines}

Where a target is missed, [performance.md](performance.md) says what limits
it, with profiles.

### Notes

{note_lines}
{row_notes}
- Lost requests have no "better" factor (coterie lost none); see the table.

## Conditions

| | |
|---|---|
{cond}

Parameters of this run:

| | |
|---|---|
{param_lines}

## Running it

- `make bench` (or `python -m bench`): the full run, a few minutes; prints
  the table and rewrites this page and `benchmarks.png`.
  Options: `--only reqrep,handlers,peers,contact,failover,pubsub,rss,http`, `--rounds N`,
  `--no-node`, `--no-docs`, `--json FILE` (every sample).
- `make bench-smoke` (`python -m bench --smoke`): every scenario, tiny, with
  fast discovery timing; what CI runs (`tests/bench/test_bench_smoke.py`),
  with no timing assertions.
- `python -m bench.profile`: py-spy samples coterie's requester and responder
  processes under the 100-in-flight load and lists the hottest functions.
- Needs: Node and `npm` (the bench runs `npm ci` in `interop/` for cote
  1.2.0 when it is missing), root for the private network namespace, `wrk`
  and `nginx` for the HTTP rows, matplotlib (`pip install --group bench`)
  for the chart.

## How it is measured

- Every service is its own process: Python workers (`bench/worker.py`, coterie
  on uvloop when installed) and Node workers (`interop/peer.js`, real cote)
  speak one JSON-lines protocol, so each scenario drives both the same way.
- Everything runs in a private network namespace (the bench enters one when
  started as root): Node cote broadcasts discovery to 255.255.255.255, which
  there reaches only loopback. coterie uses host scope (127.255.255.255).
  Without root only coterie runs, and the notes say so.
- The two implementations never pair: each uses its own advertisement key.
- Request/response: one requester process, one responder process, echoing
  the request back (`{{...req, by, pid}}`). The requester keeps C requests in
  flight until N are answered; throughput is N / elapsed. Sequential latency
  comes from the 1-in-flight run (every request timed). A warm-up precedes.
- The bare echo (`bench/echo.py`), the Python ceiling: two more processes on
  uvloop, measured in turn with the pairs above. The server is an
  `asyncio.Protocol` that reads 4-byte-length-prefixed messages and writes
  every complete message of a read back in one write; the client keeps C in
  flight with the same request loop as coterie's requester (`bench/drive.py`),
  a future per request, messages as long as coterie's request frame, and
  coterie's write policy (the first message of a loop turn at once, the rest
  of the turn together). No JSON, no framing beyond the length, no routing.
- Handlers: two more coterie pairs, alike but for the responder's echo, a
  plain function in one and an `async def` that never waits in the other,
  measured in turn at 100 in flight over many short rounds; the responder's
  CPU time per request is read from `/proc/<pid>/stat` around each round.
- Peers: pyzmq (a `ROUTER` server, a `DEALER` client on `zmq.asyncio`,
  replies matched by id) and grpc.aio (one unary method, bytes in and out),
  each a server and a client process on loopback doing the same job (JSON
  request in, `{{...req, by, pid}}` out, orjson on both sides), with a coterie
  pair of their own, in turn at 100 and at 1 in flight (`bench/peers.py`).
- First contact: the responder runs (for a time varied across a hello
  interval), then a new requester process sends one request at once; the time
  is from creating the requester component to the reply, default discovery
  timing. The second row adds interpreter start (process spawn to reply).
- Failover: three responders, one requester with many requests in flight,
  each bounded; one responder is SIGKILLed shortly after the run starts.
  Lost: requests not answered within the bound. Stall: the longest gap
  between two successive answers.
- Pub/sub: one publisher and one subscriber process; events published in
  batches of 100 with a yield between; rate taken at the subscriber.
- Idle RSS: VmRSS from `/proc/<pid>/status` of each connected, warmed, idle
  process.
- HTTP: `GET /pay/<cardno>` with wrk against the seed example's payment
  service, validating over the mesh, against the same service validating
  through nginx.
"""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def write_json(rows: list[Row], notes: list[str], extra: dict[str, Any], path: Path) -> None:
    """Write every sample and verdict as JSON."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        json.dumps({**extra, "rows": [r.as_dict() for r in rows], "notes": notes}, indent=2)
    )
