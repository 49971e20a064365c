"""``coterie monitor``: a live table of the mesh, like cote's monitor.

Design: a thin shell over :class:`coterie.Monitor`. The table (built with
rich) lists every node discovery reports, with its role, id, address, port,
key and namespace, and the nodes it reported links to; it is redrawn every
``--refresh`` seconds and at once when the mesh changes. ``--once`` prints a
single table (or ``--json``) after watching for ``--duration`` seconds, for
scripts and tests; ``--duration`` alone bounds a live session.

Requesters and Subscribers whose key starts with the monitor's ``--key``
report their links (every 5 s by default in cote; coterie components follow
``COTE_STATUS_INTERVAL``), so the "linked to" column fills in after one
status interval.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
from typing import TYPE_CHECKING, Any

from coterie.cli._common import Subparsers, run_until_signal
from coterie.components.monitor import Monitor, MonitorSnapshot
from coterie.gateways.options import add_discovery_arguments, discovery_options_from_args

if TYPE_CHECKING:
    from rich.table import Table

__all__ = ["register", "render_table", "run", "snapshot_json"]

_ROLE_ORDER = ["responder", "requester", "publisher", "subscriber", "monitor"]
_ROLE_STYLE = {
    "responder": "green",
    "requester": "cyan",
    "publisher": "magenta",
    "subscriber": "yellow",
    "monitor": "blue",
}


def register(subparsers: Subparsers) -> None:
    """Add the ``monitor`` subcommand."""
    parser = subparsers.add_parser(
        "monitor",
        help="show the nodes of the mesh and who is linked to whom, live",
        description=(
            "Watch the mesh: every node discovery reports (name, role, id, address, port, "
            "key, namespace) and the links Requesters and Subscribers report to monitors. "
            "Runs until Ctrl-C, --duration, or prints once with --once."
        ),
    )
    parser.add_argument("--name", default="coterie monitor", help="name shown to peers")
    parser.add_argument(
        "--key",
        default=None,
        help="monitor key: components whose key starts with it report their links",
    )
    parser.add_argument("--environment", default=None, help="cote environment (default: COTE_ENV)")
    parser.add_argument(
        "--refresh",
        type=float,
        default=1.0,
        metavar="SECONDS",
        help="seconds between redraws of the live table (default 1)",
    )
    parser.add_argument(
        "--duration",
        type=float,
        default=None,
        metavar="SECONDS",
        help="stop after this long (with --once: how long to watch; default 3)",
    )
    parser.add_argument(
        "--once", action="store_true", help="watch for --duration, print one table, exit"
    )
    parser.add_argument(
        "--json", action="store_true", help="with --once: print the snapshot as JSON"
    )
    add_discovery_arguments(parser)
    parser.set_defaults(run=run, _parser=parser)


def run(args: argparse.Namespace) -> int:
    """Run ``coterie monitor``."""
    parser: argparse.ArgumentParser = args._parser
    if args.refresh <= 0:
        parser.error("--refresh must be positive")
    if args.duration is not None and args.duration < 0:
        parser.error("--duration must not be negative")
    if args.json and not args.once:
        parser.error("--json needs --once")
    try:
        options = discovery_options_from_args(args)
    except ValueError as exc:
        parser.error(str(exc))
    return run_until_signal(lambda stop: _main(args, options, stop))


async def _main(args: argparse.Namespace, options: Any, stop: asyncio.Event) -> int:
    from rich.console import Console
    from rich.live import Live

    console = Console(width=160) if not sys.stdout.isatty() else Console()
    monitor = Monitor(args.name, key=args.key, environment=args.environment, discovery=options)
    async with monitor:
        if args.once:
            await _wait(stop, 3.0 if args.duration is None else args.duration)
            snap = monitor.snapshot()
            if args.json:
                print(json.dumps(snapshot_json(snap), indent=2, sort_keys=True))
            else:
                console.print(render_table(snap))
            return 0
        changed = asyncio.Event()
        monitor.on_change(lambda kind, node_id: changed.set())
        loop = asyncio.get_running_loop()
        deadline = None if args.duration is None else loop.time() + args.duration
        with Live(render_table(monitor.snapshot()), console=console, auto_refresh=False) as live:
            while not stop.is_set():
                wait = args.refresh
                if deadline is not None:
                    wait = min(wait, deadline - loop.time())
                    if wait <= 0:
                        break
                changed.clear()
                await _wait_any(stop, changed, wait)
                live.update(render_table(monitor.snapshot()), refresh=True)
    return 0


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await stop.wait()


async def _wait_any(stop: asyncio.Event, changed: asyncio.Event, seconds: float) -> None:
    tasks = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(changed.wait())]
    try:
        await asyncio.wait(tasks, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()


def _sort_key(node: Any) -> tuple[int, str, str]:
    role = node.role
    rank = _ROLE_ORDER.index(role) if role in _ROLE_ORDER else len(_ROLE_ORDER)
    return rank, node.name, node.id


def render_table(snap: MonitorSnapshot) -> Table:
    """The monitor's table for one snapshot."""
    from rich.table import Table

    links = sum(len(v) for v in snap.connections.values())
    table = Table(
        title=f"coterie monitor: {len(snap.nodes)} node(s), {links} link(s)",
        title_justify="left",
        expand=False,
    )
    table.add_column("Name", style="bold")
    table.add_column("Role")
    table.add_column("Id", style="dim")
    table.add_column("Address")
    table.add_column("Port", justify="right")
    table.add_column("Key")
    table.add_column("Namespace")
    table.add_column("Linked to")
    for node in sorted(snap.nodes.values(), key=_sort_key):
        linked = ", ".join(f"{snap.name_of(t)} ({t[:8]})" for t in node.connections)
        table.add_row(
            node.name,
            f"[{_ROLE_STYLE.get(node.role, 'white')}]{node.role}[/]",
            node.id[:8],
            node.address,
            str(node.port) if node.port is not None else "-",
            node.key or "",
            node.namespace or "",
            linked or ("-" if node.id not in snap.connections else "(none)"),
        )
    return table


def snapshot_json(snap: MonitorSnapshot) -> dict[str, Any]:
    """A snapshot as plain JSON-ready data."""
    return {
        "nodes": [
            {
                "id": n.id,
                "name": n.name,
                "role": n.role,
                "address": n.address,
                "port": n.port,
                "key": n.key,
                "namespace": n.namespace,
                "connections": list(n.connections),
            }
            for n in sorted(snap.nodes.values(), key=_sort_key)
        ],
        "edges": [list(e) for e in snap.edges],
    }
