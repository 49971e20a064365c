"""``coterie monitor``: the mesh as a live table, as JSON, or as a web page.

Design: a thin shell over :class:`coterie.Monitor`, with three views:

- The terminal table (built with rich, the ``cli`` extra) lists every node
  discovery reports, with its role, id, address, port, key and namespace,
  and the nodes it reported links to (:meth:`MonitorSnapshot.rows`). It is
  redrawn every ``--refresh`` seconds and at once when the mesh changes.
  While it is on screen, log lines go through rich's console and print above
  it; written straight to the terminal they would shift the table and leave
  its old title and border behind on every redraw.
- ``--once`` prints a single table (or ``--json``) after watching for
  ``--duration`` seconds, for scripts and tests. ``--json`` needs no rich.
- ``--web [HOST:]PORT`` serves the page of :class:`coterie.web.MonitorServer`
  (aiohttp, the ``http`` extra): a live graph and the same table, on
  127.0.0.1:5555 (cote's port) by default.

``--duration`` alone bounds a live session. A missing extra is one line on
stderr naming the extra to install, and exit code 1, never a traceback.

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
import logging
import os
import socket
import sys
from collections.abc import Iterator
from errno import EADDRINUSE
from typing import TYPE_CHECKING, Any, TextIO

from coterie.cli._common import Subparsers, run_until_signal
from coterie.components.monitor import TABLE_COLUMNS, Monitor, MonitorSnapshot
from coterie.gateways.hostscope import add_discovery_arguments, discovery_options_from_args

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

__all__ = [
    "DEFAULT_WEB_ADDRESS",
    "KEY_NOTE",
    "parse_web_address",
    "register",
    "render_table",
    "run",
    "snapshot_json",
]

#: What the Key column shows; printed under the table.
KEY_NOTE = (
    "Key: the advertisement key as cote writes it, ENVIRONMENT:$$KEY "
    "($$ alone: no COTE_ENV and no key). Components pair only with an equal key."
)

#: Where ``--web`` serves when given no address (cote's monitor port, loopback only).
DEFAULT_WEB_ADDRESS = ("127.0.0.1", 5555)

_ROLE_STYLE = {
    "responder": "green",
    "requester": "cyan",
    "publisher": "magenta",
    "subscriber": "yellow",
    "monitor": "blue",
}

_NO_RICH = (
    "coterie monitor: the table view needs rich, which is not installed; "
    "install it with: pip install 'coterie[cli]' (or use --once --json, or --web)"
)
_NO_AIOHTTP = (
    "coterie monitor: --web needs aiohttp, which is not installed; "
    "install it with: pip install 'coterie[http]'"
)


def register(subparsers: Subparsers) -> None:
    """Add the ``monitor`` subcommand."""
    parser = subparsers.add_parser(
        "monitor",
        help="show the nodes of the mesh and who is linked to whom, live",
        description=(
            "Watch the mesh: every node discovery reports (name, role, id, address, port, "
            "key, namespace) and the links Requesters and Subscribers report to monitors. "
            "Runs until Ctrl-C, --duration, or prints once with --once. --web serves the "
            "same as a live graph and table in the browser."
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
    host, port = DEFAULT_WEB_ADDRESS
    parser.add_argument(
        "--web",
        nargs="?",
        const=f"{host}:{port}",
        default=None,
        metavar="[HOST:]PORT",
        help=(
            f"serve a live graph and table of the mesh on this address "
            f"(default {host}:{port}; HOST defaults to {host}; PORT 0 picks a free one)"
        ),
    )
    add_discovery_arguments(parser)
    parser.set_defaults(run=run, _parser=parser)


def parse_web_address(text: str) -> tuple[str, int]:
    """Parse ``--web``'s ``[HOST:]PORT``; IPv6 hosts go in brackets (``[::1]:5555``).

    Returns:
        ``(host, port)``; the host is 127.0.0.1 when only a port is given.

    Raises:
        ValueError: For a missing or out-of-range port, or an empty host.
    """
    text = text.strip()
    host, sep, port_text = text.rpartition(":")
    if not sep:
        host, port_text = DEFAULT_WEB_ADDRESS[0], text
    elif host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ValueError(f"--web {text!r}: put an IPv6 host in brackets, e.g. [::1]:5555")
    if not host:
        raise ValueError(f"--web {text!r}: the host before ':' is empty")
    try:
        port = int(port_text)
    except ValueError:
        raise ValueError(f"--web {text!r}: the port must be a number, not {port_text!r}") from None
    if not 0 <= port <= 65535:
        raise ValueError(f"--web {text!r}: the port must be 0-65535")
    return host, port


def run(args: argparse.Namespace) -> int:
    """Run ``coterie monitor``."""
    parser: argparse.ArgumentParser = args._parser
    if args.refresh <= 0:
        parser.error("--refresh must be positive")
    if args.duration is not None and args.duration < 0:
        parser.error("--duration must not be negative")
    if args.json and not args.once:
        parser.error("--json needs --once")
    web: tuple[str, int] | None = None
    if args.web is not None:
        if args.once:
            parser.error("--web serves a live page; it does not go with --once")
        try:
            web = parse_web_address(args.web)
        except ValueError as exc:
            parser.error(str(exc))
    try:
        options = discovery_options_from_args(args)
    except ValueError as exc:
        parser.error(str(exc))
    if web is not None:
        try:
            import aiohttp  # noqa: F401
        except ImportError:
            print(_NO_AIOHTTP, file=sys.stderr)
            return 1
        return run_until_signal(lambda stop: _serve_web(args, options, web, stop))
    if not args.json:
        try:
            import rich.live  # noqa: F401
        except ImportError:
            print(_NO_RICH, file=sys.stderr)
            return 1
    return run_until_signal(lambda stop: _main(args, options, stop))


def _new_monitor(args: argparse.Namespace, options: Any) -> Monitor:
    return Monitor(args.name, key=args.key, environment=args.environment, discovery=options)


async def _main(args: argparse.Namespace, options: Any, stop: asyncio.Event) -> int:
    async with _new_monitor(args, options) as monitor:
        if args.once:
            await _wait(stop, 3.0 if args.duration is None else args.duration)
            snap = monitor.snapshot()
            if args.json:
                print(json.dumps(snapshot_json(snap), indent=2, sort_keys=True))
            else:
                _console().print(render_table(snap))
            return 0
        await _live_table(monitor, args, stop)
    return 0


def _console() -> Console:
    from rich.console import Console

    return Console(width=160) if not sys.stdout.isatty() else Console()


async def _live_table(monitor: Monitor, args: argparse.Namespace, stop: asyncio.Event) -> None:
    from rich.live import Live

    changed = asyncio.Event()

    def on_change(kind: str, node_id: str) -> None:
        changed.set()

    monitor.on_change(on_change)
    loop = asyncio.get_running_loop()
    deadline = None if args.duration is None else loop.time() + args.duration
    live = Live(render_table(monitor.snapshot()), console=_console(), auto_refresh=False)
    try:
        with live, _logs_through(sys.stderr):
            while not stop.is_set():
                wait = args.refresh
                if deadline is not None:
                    wait = min(wait, deadline - loop.time())
                    if wait <= 0:
                        break
                changed.clear()
                await _wait_any(stop, changed, wait)
                live.update(render_table(monitor.snapshot()), refresh=True)
    finally:
        monitor.off_change(on_change)


@contextlib.contextmanager
def _logs_through(stream: TextIO) -> Iterator[None]:
    """Point the root logger's terminal handlers at ``stream`` for a while.

    Inside ``Live``, ``sys.stderr`` is rich's proxy, which prints above the
    live table. Handlers that ``logging.basicConfig`` made hold the real
    stderr (or stdout) and would write past it.
    """
    terminals = {sys.__stderr__, sys.__stdout__}
    swapped: list[tuple[logging.StreamHandler[TextIO], TextIO]] = []
    for handler in logging.getLogger().handlers:
        if type(handler) is logging.StreamHandler and handler.stream in terminals:
            swapped.append((handler, handler.stream))
            handler.setStream(stream)
    try:
        yield
    finally:
        for handler, original in swapped:
            handler.setStream(original)


async def _serve_web(
    args: argparse.Namespace, options: Any, address: tuple[str, int], stop: asyncio.Event
) -> int:
    from coterie.web import MonitorServer

    host, port = address
    async with _new_monitor(args, options) as monitor:
        server = MonitorServer(monitor, host, port)
        try:
            await server.start()
        except OSError as exc:
            # asyncio wraps bind errors in a long sentence; the errno says it.
            errno = exc.errno if isinstance(exc.errno, int) else 0
            reason = os.strerror(errno) if errno > 0 else exc.strerror or str(exc)
            if errno == EADDRINUSE:
                reason += _another_port(host, port)
            print(f"coterie monitor: cannot serve on {host}:{port}: {reason}", file=sys.stderr)
            return 1
        try:
            print(f"coterie monitor: serving {server.url} (Ctrl-C to stop)", flush=True)
            if args.duration is None:
                await stop.wait()
            else:
                await _wait(stop, args.duration)
        finally:
            await server.close()
    return 0


def _another_port(host: str, port: int) -> str:
    """A hint naming a port free on ``host`` now, the nearest one above ``port``."""
    for candidate in range(port + 1, min(port + 100, 65535) + 1):
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
            try:
                sock.bind((host, candidate))
            except OSError:
                continue
        shown = f"[{host}]" if ":" in host else host
        return f" (another monitor?); try --web {shown}:{candidate}, free now, or --web 0"
    return " (another monitor?); try --web 0 for any free port"


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


def render_table(snap: MonitorSnapshot) -> Table:
    """The monitor's table for one snapshot (needs rich).

    Cells are plain text: names and keys come from the network, and rich
    markup in them is shown as written, never interpreted.
    """
    from rich.table import Table
    from rich.text import Text

    links = sum(len(v) for v in snap.connections.values())
    table = Table(
        title=f"coterie monitor: {len(snap.nodes)} node(s), {links} link(s)",
        title_justify="left",
        caption=KEY_NOTE,
        caption_justify="left",
        expand=False,
    )
    styles = {"Name": "bold", "Id": "dim"}
    for column in TABLE_COLUMNS:
        table.add_column(
            column, style=styles.get(column), justify="right" if column == "Port" else "left"
        )
    for row in snap.rows():
        cells = [Text(cell) for cell in row]
        cells[1].stylize(_ROLE_STYLE.get(row[1], "white"))
        table.add_row(*cells)
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
            for n in snap.sorted_nodes()
        ],
        "edges": [list(e) for e in snap.edges],
    }
