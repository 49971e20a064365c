"""``coterie announce``: run a command and announce its HTTP port on discovery.

Design: a thin shell over :class:`coterie.gateways.announce.Announcer`, the
Registrator of this project. The exit code is the command's (128 + signal
number when a signal ended it), so ``announce`` can wrap a service in any
supervisor.
"""

from __future__ import annotations

import argparse
import asyncio
import logging

from coterie.cli._common import Subparsers, run_until_signal
from coterie.gateways.announce import Announcer
from coterie.gateways.hostscope import add_discovery_arguments, discovery_options_from_args

__all__ = ["register", "run"]

log = logging.getLogger("coterie.announce")

_EXAMPLE = """\
example:
  coterie announce --name validation-service --port 8101 -- \\
      python examples/payment/validation_service.py --http 8101
"""


def register(subparsers: Subparsers) -> None:
    """Add the ``announce`` subcommand."""
    parser = subparsers.add_parser(
        "announce",
        help="run a command and announce its HTTP port while it lives and answers",
        description=(
            "Run COMMAND and announce it on coterie discovery as an HTTP service NAME on "
            "PORT while the process lives and the port accepts connections; withdraw "
            "when either stops. `coterie nginx --service NAME` follows these announcements."
        ),
        epilog=_EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--name", required=True, help="service name to announce")
    parser.add_argument("--port", required=True, type=int, help="TCP port the command serves on")
    parser.add_argument(
        "--check-host", default="127.0.0.1", help="where to check the port (default 127.0.0.1)"
    )
    parser.add_argument(
        "--advertise-host",
        default=None,
        help="host to advertise (default: peers use the address the announcement comes from)",
    )
    parser.add_argument(
        "--check-interval",
        type=float,
        default=0.5,
        metavar="SECONDS",
        help="seconds between port checks (default 0.5)",
    )
    add_discovery_arguments(parser)
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- then the command to run")
    parser.set_defaults(run=run, _parser=parser)


def run(args: argparse.Namespace) -> int:
    """Run ``coterie announce``."""
    command = list(args.command)
    if command and command[0] == "--":
        command = command[1:]
    parser: argparse.ArgumentParser = args._parser
    if not command:
        parser.error("give the command to run after --")
    try:
        discovery = discovery_options_from_args(args)
        discovery.resolve()
        announcer = Announcer(
            command,
            name=args.name,
            port=args.port,
            check_host=args.check_host,
            advertise_host=args.advertise_host,
            discovery=discovery,
            check_interval=args.check_interval,
        )
    except ValueError as exc:
        parser.error(str(exc))

    async def main(stop: asyncio.Event) -> int:
        waiter = asyncio.ensure_future(stop.wait())
        waiter.add_done_callback(lambda _: announcer.stop())
        try:
            code = await announcer.run()
        except OSError as exc:
            log.error("cannot run %s: %s", command[0], exc)
            return 127
        finally:
            waiter.cancel()
        return code if code >= 0 else 128 - code

    return run_until_signal(main)
