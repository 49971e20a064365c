"""Helpers shared by the subcommand modules.

Design: subcommands are synchronous ``run(args) -> int`` functions; the async
ones go through :func:`run_until_signal`, which runs a coroutine with SIGINT
and SIGTERM turned into a stop event, so every subcommand shuts down the same
clean way on Ctrl-C or ``kill``.

The commands that join the mesh as a component (``call``, ``publish``,
``listen``, ``services``, ``bench``) share one set of options, added by
:func:`add_component_arguments` and turned into component keyword arguments
by :func:`component_options`: ``--namespace``, ``--key``, ``--environment``,
the ``--tls-*`` files (else ``COTERIE_TLS_*`` or ``COTERIE_LINK_SECRET``, as
any component reads them) and the discovery flags ``coterie doctor`` takes.
Their JSON arguments go through :func:`parse_json`, so a value that is not
JSON is the same usage error (exit 2) everywhere.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
from collections.abc import Callable, Coroutine
from typing import Any, TypeAlias

from coterie.gateways.hostscope import add_discovery_arguments, discovery_options_from_args
from coterie.settings import Settings
from coterie.tls import TLSFiles

__all__ = [
    "Subparsers",
    "add_component_arguments",
    "add_tls_arguments",
    "component_options",
    "parse_json",
    "run_until_signal",
    "tls_files",
    "write_json_line",
]

#: What ``register(subparsers)`` receives.
Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def run_until_signal(main: Callable[[asyncio.Event], Coroutine[Any, Any, int]]) -> int:
    """Run ``main(stop)`` in a new event loop; SIGINT/SIGTERM set ``stop``.

    Returns:
        What ``main`` returns.
    """

    async def runner() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, stop.set)
        try:
            return await main(stop)
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                with contextlib.suppress(NotImplementedError, RuntimeError):
                    loop.remove_signal_handler(sig)

    return asyncio.run(runner())


def add_tls_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--tls-ca``, ``--tls-cert`` and ``--tls-key`` (PEM files, all three or none)."""
    parser.add_argument("--tls-ca", default=None, metavar="FILE", help="CA certificate (PEM)")
    parser.add_argument("--tls-cert", default=None, metavar="FILE", help="certificate (PEM)")
    parser.add_argument("--tls-key", default=None, metavar="FILE", help="private key (PEM)")


def tls_files(args: argparse.Namespace, settings: Settings) -> TLSFiles | None:
    """The ``--tls-*`` files, else the ``COTERIE_TLS_*`` ones, else ``None``.

    Raises:
        ValueError: Only some of the three flags are given.
    """
    given = (args.tls_ca, args.tls_cert, args.tls_key)
    if any(given):
        if not all(given):
            raise ValueError("--tls-ca, --tls-cert and --tls-key go together")
        return TLSFiles(*given)
    return settings.tls_files()


def add_component_arguments(parser: argparse.ArgumentParser, role: str, name: str) -> None:
    """Add the options of a command that joins the mesh as a ``role``.

    ``--name`` (``name`` by default), ``--namespace``, ``--key``,
    ``--environment``, the ``--tls-*`` files and the discovery flags
    (:func:`coterie.gateways.hostscope.add_discovery_arguments`).
    """
    group = parser.add_argument_group(
        "pairing", f"The {role} pairs only with components of the same namespace, key, "
        "environment and TLS (COTERIE_TLS_* or COTERIE_LINK_SECRET unless --tls-* is given).",
    )  # fmt: skip
    group.add_argument(
        "--name",
        default=name,
        help=f"the name peers see, and the name a --tls-cert must be issued for ({name!r})",
    )
    group.add_argument("--namespace", default=None, help="cote namespace")
    group.add_argument("--key", default=None, help="cote advertisement key")
    group.add_argument("--environment", default=None, help="cote environment (default: COTE_ENV)")
    add_tls_arguments(group)  # type: ignore[arg-type]  # a group takes the same calls
    add_discovery_arguments(parser)


def component_options(args: argparse.Namespace) -> dict[str, Any]:
    """Component keyword arguments from :func:`add_component_arguments`'s flags.

    Discovery's own hello log lines show only with ``-v``. A flag out of
    range, or only some of the ``--tls-*`` files, is a usage error (exit 2).
    """
    parser: argparse.ArgumentParser = args._parser
    try:
        options = discovery_options_from_args(args)
        files = tls_files(args, Settings.from_environ())
    except ValueError as exc:
        parser.error(str(exc))
    if not args.verbose:
        options.log = False
    kwargs: dict[str, Any] = {
        "name": args.name,
        "namespace": args.namespace,
        "key": args.key,
        "environment": args.environment,
        "discovery": options,
    }
    if files is not None:
        kwargs["tls"] = files
    return kwargs


def parse_json(
    parser: argparse.ArgumentParser, text: str, what: str, example: str = """'{"amount": 5}'"""
) -> Any:
    """``text`` as JSON, or a usage error (exit 2) that shows what to write instead.

    Args:
        parser: The subcommand's parser, whose usage the error shows.
        text: The argument; ``-`` reads standard input.
        what: The argument's name in the message (``JSON``, ``DATA``).
        example: Valid JSON for that argument, shown in the message.
    """
    source = "standard input" if text == "-" else f"argument {what}"
    if text == "-":
        text = sys.stdin.read()
    try:
        return json.loads(text)
    except ValueError as exc:
        shown = text if len(text) <= 60 else text[:57] + "..."
        parser.error(f"{source} is not JSON ({exc}): {shown!r}; write JSON, such as {example}")


def write_json_line(value: Any) -> None:
    """Write ``value`` as one JSON line on stdout, flushed at once."""
    sys.stdout.write(json.dumps(value, ensure_ascii=False) + "\n")
    sys.stdout.flush()
