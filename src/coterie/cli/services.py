"""``coterie services``: which responders are on the mesh, and what they serve.

Design: a :class:`coterie.Monitor` listens to discovery for ``--listen``
seconds (one and a half hello intervals by default: every live node hellos
once per interval) and lists each responder it heard, one row each: name,
the request types it serves (``respondsTo``; ``*`` when it lists none and so
takes any type, as cote's responders do), namespace, advertisement key (as
cote writes it, ``ENVIRONMENT:$$KEY``), the address and port it serves on,
and whether it runs coterie's mutual TLS. The address is the one a
requester connects to (:meth:`Node.connect_host
<coterie.protocol.nodes.Node.connect_host>`), not the hello's source,
which is ``0.0.0.0`` for a Node peer on an unaddressed host. Rows are sorted by name, then
address.

Output: a table (rich, the ``cli`` extra) or, with ``--json``, one JSON
array of ``{"name", "id", "types", "namespace", "key", "address", "port",
"tls"}`` objects. ``--namespace`` and ``--type`` narrow the list. Exit 0,
also when no responder was heard (the table says so); 1 only when rich is
missing for the table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from coterie.cli._common import Subparsers
from coterie.components.monitor import Monitor
from coterie.discovery.options import DiscoveryOptions
from coterie.gateways.hostscope import add_discovery_arguments, discovery_options_from_args
from coterie.protocol.nodes import Node
from coterie.protocol.pairing import role_of, serves
from coterie.tls import ADVERTISED as TLS_ADVERTISED

__all__ = ["COLUMNS", "register", "responders", "run"]

#: The table's columns.
COLUMNS = ("Name", "Types", "Namespace", "Key", "Address", "TLS")

_NO_RICH = (
    "coterie services: the table needs rich, which is not installed; "
    "install it with: pip install 'coterie[cli]' (or use --json)"
)


def register(subparsers: Subparsers) -> None:
    """Add the ``services`` subcommand."""
    parser = subparsers.add_parser(
        "services",
        help="list the responders on the mesh: types, namespace, key, address, TLS",
        description=(
            "Listen to discovery for --listen seconds and list every responder heard: the "
            "request types it serves, its namespace, key, address and whether it runs TLS."
        ),
    )
    parser.add_argument(
        "--listen",
        type=float,
        default=None,
        metavar="SECONDS",
        help="how long to listen (default: 1.5 hello intervals, 3 s with cote's timings)",
    )
    parser.add_argument("--namespace", default=None, help="only responders of this namespace")
    parser.add_argument(
        "--type", dest="request_type", default=None, help="only responders that serve this type"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON array")
    add_discovery_arguments(parser)
    parser.set_defaults(run=run, _parser=parser)


def run(args: argparse.Namespace) -> int:
    """Listen, then print the responders heard."""
    parser: argparse.ArgumentParser = args._parser
    if args.listen is not None and not args.listen >= 0:
        parser.error(f"--listen must be 0 or more seconds, got {args.listen:g}")
    try:
        options = discovery_options_from_args(args)
    except ValueError as exc:
        parser.error(str(exc))
    if not args.verbose:
        options.log = False
    if not args.json:
        try:
            import rich.table  # noqa: F401
        except ImportError:
            sys.stderr.write(_NO_RICH + "\n")
            return 1
    listen = args.listen
    if listen is None:
        listen = 1.5 * options.resolve().hello_interval / 1000
    nodes, use_host_names = asyncio.run(_listen(options, listen))
    found = responders(
        nodes,
        use_host_names=use_host_names,
        namespace=args.namespace,
        request_type=args.request_type,
    )
    if args.json:
        sys.stdout.write(json.dumps(found, ensure_ascii=False) + "\n")
    else:
        _print_table(found, listen)
    return 0


async def _listen(options: DiscoveryOptions, seconds: float) -> tuple[list[Node], bool]:
    """The nodes heard within ``seconds``, and whether host names are used to reach them."""
    async with Monitor("coterie services", host="127.0.0.1", discovery=options) as monitor:
        await asyncio.sleep(seconds)
        settings = monitor.discovery_settings
        nodes = [] if monitor.discovery is None else list(monitor.discovery.nodes.values())
        return nodes, settings is not None and settings.use_host_names


def responders(
    nodes: list[Node],
    *,
    use_host_names: bool = False,
    namespace: str | None = None,
    request_type: str | None = None,
) -> list[dict[str, Any]]:
    """The responders among ``nodes`` as JSON-ready rows, sorted by name and address.

    Args:
        nodes: What discovery heard.
        use_host_names: Whether links go to host names (``COTE_USE_HOST_NAMES``):
            the address shown is the one a requester would connect to.
        namespace: Keep only this namespace.
        request_type: Keep only responders that serve this type.
    """
    field, value = TLS_ADVERTISED
    rows = []
    for node in nodes:
        adv = node.advertisement
        if role_of(adv) != "responder":
            continue
        if namespace is not None and adv.get("namespace") != namespace:
            continue
        if request_type is not None and not serves(adv, request_type):
            continue
        listed = adv.get("respondsTo")
        types = [str(t) for t in listed] if isinstance(listed, list) else ["*"]
        rows.append(
            {
                "name": str(adv.get("name", "")),
                "id": node.id,
                "types": types,
                "namespace": adv.get("namespace"),
                "key": adv.get("key"),
                "address": node.connect_host(use_host_names),
                "port": node.port,
                "tls": adv.get(field) == value,
            }
        )
    rows.sort(key=lambda r: (r["name"], r["address"], r["port"] or 0, r["id"]))
    return rows


def _print_table(rows: list[dict[str, Any]], listen: float) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    table = Table(
        title=f"coterie services: {len(rows)} responder(s) heard in {listen:g} s",
        title_justify="left",
        expand=False,
    )
    for column in COLUMNS:
        table.add_column(column, style="bold" if column == "Name" else None)
    for r in rows:
        address = f"{r['address']}:{r['port']}" if r["port"] is not None else r["address"]
        cells = (
            r["name"],
            ", ".join(r["types"]),
            r["namespace"] or "",
            r["key"] or "",
            address,
            "mTLS" if r["tls"] else "no",
        )
        table.add_row(*(Text(c) for c in cells))  # text from the network: never markup
    console = Console(width=160) if not sys.stdout.isatty() else Console()
    console.print(table)
