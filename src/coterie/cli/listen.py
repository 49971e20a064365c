"""``coterie listen``: print the mesh's published events as NDJSON.

Design: a :class:`coterie.Subscriber` whose ``subscribesTo`` is PATTERN
(cote's patterns: ``*`` stands for one or more characters; every event by
default) links to every paired publisher, and each event becomes one JSON
line on stdout, ``{"topic": ..., "data": ...}``, flushed at once so a pipe
(``| jq``) sees it as it happens. Data that is not JSON (a publisher's raw
bytes) is written as a string.

It runs until Ctrl-C or SIGTERM (exit 0), ``--count`` events (exit 0) or
``--duration`` seconds (exit 0 as well: a quiet mesh is not an error).
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from coterie.cli._common import (
    Subparsers,
    add_component_arguments,
    component_options,
    run_until_signal,
    write_json_line,
)
from coterie.components.subscriber import Subscriber

__all__ = ["register", "run"]


def register(subparsers: Subparsers) -> None:
    """Add the ``listen`` subcommand."""
    parser = subparsers.add_parser(
        "listen",
        help="print published events as JSON lines",
        description=(
            'Subscribe to PATTERN (cote\'s: "*" stands for one or more characters; every '
            'event by default) and write one {"topic", "data"} JSON line per event. Runs '
            "until Ctrl-C, --count events or --duration seconds."
        ),
    )
    parser.add_argument("pattern", metavar="PATTERN", nargs="?", default="*", help="events to take")
    parser.add_argument("--count", type=int, default=None, metavar="N", help="exit after N events")
    parser.add_argument(
        "--duration", type=float, default=None, metavar="SECONDS", help="exit after this long"
    )
    add_component_arguments(parser, "subscriber", "coterie listen")
    parser.set_defaults(run=run, _parser=parser)


def run(args: argparse.Namespace) -> int:
    """Print events until told to stop; returns the exit code."""
    parser: argparse.ArgumentParser = args._parser
    if not args.pattern:
        parser.error("PATTERN must not be empty (leave it out for every event)")
    if args.count is not None and args.count < 1:
        parser.error(f"--count must be 1 or more, got {args.count}")
    if args.duration is not None and not args.duration > 0:
        parser.error(f"--duration must be positive seconds, got {args.duration:g}")
    options = component_options(args)

    async def main(stop: asyncio.Event) -> int:
        seen = 0

        def on_event(topic: str, data: Any) -> None:
            nonlocal seen
            if stop.is_set():
                return
            if isinstance(data, bytes | bytearray):
                data = data.decode(errors="replace")
            try:
                write_json_line({"topic": topic, "data": data})
            except BrokenPipeError:  # the reader left (| head): nothing more to say
                stop.set()
                return
            seen += 1
            if args.count is not None and seen >= args.count:
                stop.set()

        subscriber = Subscriber(subscribes_to=[args.pattern], **options)
        subscriber.on("**", on_event)  # every event subscribes_to lets through, "::" too
        async with subscriber:
            try:
                async with asyncio.timeout(args.duration):
                    await stop.wait()
            except TimeoutError:
                pass
        return 0

    return run_until_signal(main)
