"""``coterie publish``: publish one event from the shell.

Design: a :class:`coterie.Publisher` with the command's pairing and
discovery options joins the mesh and waits for subscribers to link to it:
until ``--subscribers`` of them are linked, then one more hello interval for
the rest (every live subscriber hears the new publisher's first hello, and
links at once; a slower one is heard within an interval). It then publishes
DATA once, waits until the frames are written, and leaves.

Output: one line on stderr saying how many subscribers the event went to.
Exit 0 when it went to at least ``--subscribers``; 1 when fewer linked within
``--wait`` seconds (cote's publisher would send to no one silently; a shell
user wants to know). DATA that is not JSON is a usage error, exit 2.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from coterie.cli._common import Subparsers, add_component_arguments, component_options, parse_json
from coterie.components.publisher import Publisher

__all__ = ["DEFAULT_WAIT", "register", "run"]

#: Seconds to wait for subscribers when ``--wait`` is not given.
DEFAULT_WAIT = 5.0


def register(subparsers: Subparsers) -> None:
    """Add the ``publish`` subcommand."""
    parser = subparsers.add_parser(
        "publish",
        help="publish one event to the subscribers of the mesh",
        description=(
            "Publish TOPIC with the JSON value DATA (- reads it from stdin) once, after the "
            "subscribers linked to this publisher. Exit 1 when fewer than --subscribers "
            "linked within --wait seconds."
        ),
    )
    parser.add_argument("topic", metavar="TOPIC", help="the event name")
    parser.add_argument(
        "data", metavar="DATA", nargs="?", default="null", help="a JSON value; - reads stdin"
    )
    parser.add_argument(
        "--subscribers",
        type=int,
        default=1,
        metavar="N",
        help="publish once this many subscribers linked (default 1; 0 publishes at once)",
    )
    parser.add_argument(
        "--wait",
        type=float,
        default=DEFAULT_WAIT,
        metavar="SECONDS",
        help=f"how long to wait for them (default {DEFAULT_WAIT:g})",
    )
    add_component_arguments(parser, "publisher", "coterie publish")
    parser.set_defaults(run=run, _parser=parser)


def run(args: argparse.Namespace) -> int:
    """Publish the event once; returns the exit code."""
    parser: argparse.ArgumentParser = args._parser
    if not args.topic:
        parser.error("TOPIC must not be empty")
    if args.subscribers < 0:
        parser.error(f"--subscribers must be 0 or more, got {args.subscribers}")
    if not args.wait >= 0:
        parser.error(f"--wait must be 0 or more seconds, got {args.wait:g}")
    data = parse_json(parser, args.data, "DATA", """'{"amount": 5}' or '"text"' (quoted)""")
    return asyncio.run(_publish(args, data, component_options(args)))


async def _publish(args: argparse.Namespace, data: Any, options: dict[str, Any]) -> int:
    loop = asyncio.get_running_loop()
    async with Publisher(**options) as publisher:
        started = loop.time()
        settings = publisher.discovery_settings
        interval = (settings.hello_interval if settings is not None else 2000) / 1000
        if args.subscribers:
            try:
                await publisher.wait_subscribers(args.subscribers, timeout=args.wait)
            except TimeoutError:
                pass
            else:  # the others hear the same hellos: give them one interval
                await asyncio.sleep(
                    max(min(started + interval, started + args.wait) - loop.time(), 0)
                )
        sent = await publisher.publish(args.topic, data)
    sys.stderr.write(f"coterie publish: {args.topic!r} went to {sent} subscriber(s)\n")
    if sent < args.subscribers:
        sys.stderr.write(
            f"coterie publish: fewer than {args.subscribers} subscriber(s) linked within "
            f"{args.wait:g} s: check that they run with the same namespace, key, environment, "
            "TLS and discovery scope (coterie doctor shows who is on the mesh)\n"
        )
        return 1
    return 0
