"""The bench command: ``python -m bench [--smoke] [--only ...]``, or ``python -m bench scale``.

Design: the driver checks Node and the pinned cote (installing it with
``npm ci`` when missing, while the network is still reachable), then moves
into a private network namespace (root) so real cote may broadcast, and runs
the scenarios one after another in one asyncio loop. Each scenario measures
coterie and cote alternately. A failing scenario is reported and the others
still run; the exit code says whether all succeeded. The full run writes the
report to docs/; the smoke run only prints, unless ``--docs`` is given.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path

from bench import report, system
from bench.model import Context, Params, Row
from bench.proc import ROOT, BenchError, Impl

#: Discovery timing for the smoke run: fast, so CI takes seconds.
SMOKE_DISCOVERY = {
    "helloInterval": 200,
    "checkInterval": 400,
    "nodeTimeout": 1000,
    "masterTimeout": 1200,
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    from bench.scenarios import SCENARIOS

    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Benchmark coterie against Node cote 1.2.0 (and nginx) in one run.",
    )
    parser.add_argument(
        "--smoke", action="store_true", help="every scenario, tiny and with fast discovery (for CI)"
    )
    parser.add_argument(
        "--only", default="", help=f"comma-separated scenarios to run: {','.join(SCENARIOS)}"
    )
    parser.add_argument("--no-node", action="store_true", help="measure coterie only")
    parser.add_argument("--rounds", type=int, default=None, help="rounds per scenario")
    docs = parser.add_mutually_exclusive_group()
    docs.add_argument(
        "--docs",
        dest="docs",
        action="store_true",
        default=None,
        help="write docs/benchmarks.md and .png (default for the full run)",
    )
    docs.add_argument("--no-docs", dest="docs", action="store_false")
    parser.add_argument(
        "--docs-dir",
        type=Path,
        default=ROOT / "docs",
        help="where to write benchmarks.md and benchmarks.png",
    )
    parser.add_argument("--json", type=Path, default=None, help="also write every sample here")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    args = parser.parse_args(argv)
    unknown = [s for s in args.only.split(",") if s and s not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario(s) {', '.join(unknown)}; known: {', '.join(SCENARIOS)}")
    if args.rounds is not None and args.rounds < 1:
        parser.error("--rounds must be at least 1")
    return args


async def run_scenarios(ctx: Context, names: list[str]) -> tuple[list[Row], list[str]]:
    """Run the named scenarios; return the rows and the names that failed."""
    from bench.scenarios import SCENARIOS

    rows: list[Row] = []
    failed: list[str] = []
    for name in names:
        ctx.log(f"--- {name}")
        started = time.perf_counter()
        try:
            rows.extend(await SCENARIOS[name].run(ctx))
        except (BenchError, OSError, KeyError, ValueError) as exc:
            failed.append(name)
            ctx.notes.append(f"{name}: FAILED: {exc}")
            ctx.log(f"{name} failed: {exc}")
        ctx.log(f"{name} took {time.perf_counter() - started:.1f} s")
    return rows, failed


def main(argv: list[str] | None = None) -> int:
    """Run the bench; 0 when every scenario ran, 2 on a stale compiled build.

    ``scale`` runs :mod:`bench.scale`, ``reconnect`` :mod:`bench.reconnect`.
    """
    from bench.scenarios import SCENARIOS
    from coterie import _native

    argv = sys.argv[1:] if argv is None else argv
    problem = _native.stale()
    if problem is not None:
        # Measuring pure Python while believing it compiled is the one wrong
        # number this bench must never print.
        print(f"bench: not measuring: {problem}", file=sys.stderr)
        return 2
    if argv[:1] == ["scale"]:
        from bench import scale

        return scale.main(argv[1:])
    if argv[:1] == ["reconnect"]:
        from bench import reconnect

        return reconnect.main(argv[1:])
    args = parse_args(argv)
    started = time.perf_counter()
    params = Params.tiny() if args.smoke else Params.full()
    if args.rounds is not None:
        params.rounds = params.rr_rounds = params.contact_rounds = args.rounds
    notes: list[str] = []

    node_ok, node_info = (False, "--no-node given") if args.no_node else system.ensure_node()
    in_netns, netns_info = system.enter_private_netns()
    impls = [Impl("coterie", "bench-coterie")]
    if node_ok and in_netns:
        impls.append(Impl("cote", "bench-cote"))
    else:
        why = node_info if not node_ok else netns_info
        notes.append(f"Node cote skipped: {why}; coterie ran alone in host scope (127.255.255.255)")
    if args.smoke:
        impls = [Impl(i.name, i.key, dict(SMOKE_DISCOVERY)) for i in impls]
        notes.append("smoke run: tiny sizes and fast discovery timing; not a measurement")
    network = netns_info if in_netns else f"host namespace ({netns_info})"

    load_before = system.load_average()
    if load_before > 0.5 * (os.cpu_count() or 1):
        notes.append(
            f"the machine was busy when the bench started (load average {load_before:.2f}); "
            "absolute numbers are lower and noisier than on an idle machine"
        )
    ctx = Context(params=params, impls=impls, notes=notes, verbose=not args.quiet)
    ctx.log(f"bench: {', '.join(i.name for i in impls)}; network: {network}")
    ctx.log(f"coterie {system.coterie_source()} from {system.coterie_path()}")
    ctx.log(f"coterie build: {_native.describe()}")
    names = [s for s in args.only.split(",") if s] or list(SCENARIOS)
    rows, failed = asyncio.run(run_scenarios(ctx, names))
    elapsed = time.perf_counter() - started

    conditions = system.conditions()
    conditions["network"] = network
    conditions["load average (1 min) before / after"] = (
        f"{load_before:.2f} / {system.load_average():.2f}"
    )
    title = f"coterie vs cote {conditions['cote']} ({'smoke' if args.smoke else 'full'} run)"
    report.print_table(rows, notes, title)
    print(f"bench: {elapsed:.0f} s")
    write_docs = args.docs if args.docs is not None else not args.smoke
    command = "python -m bench" + (" --smoke" if args.smoke else "")
    if write_docs:
        chart_path = args.docs_dir / "benchmarks.png"
        chart = chart_path if report.write_chart(rows, chart_path, title) else None
        report.write_doc(
            rows,
            notes,
            conditions,
            params.as_dict(),
            args.docs_dir / "benchmarks.md",
            chart,
            command,
            elapsed,
        )
        print(
            f"bench: wrote {args.docs_dir / 'benchmarks.md'}"
            + (f" and {chart_path}" if chart else " (no chart: matplotlib missing)")
        )
    if args.json is not None:
        report.write_json(
            rows,
            notes,
            {
                "conditions": conditions,
                "params": params.as_dict(),
                "failed": failed,
                "elapsed": elapsed,
            },
            args.json,
        )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
