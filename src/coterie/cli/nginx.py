"""``coterie nginx``: a real nginx whose upstream follows coterie discovery.

Design: a thin shell over :class:`coterie.gateways.nginx.UpstreamWatcher`. It
starts nginx with a private prefix directory (a temporary one by default,
removed however the command returns, a missing nginx included), listening on
``--listen``, and rewrites and reloads the upstream on every announcement or
withdrawal. ``--print-config`` shows what would be rendered and exits.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys
import tempfile

from coterie.cli._common import Subparsers, run_until_signal
from coterie.discovery.options import DiscoveryOptions
from coterie.gateways.hostscope import add_discovery_arguments, discovery_options_from_args
from coterie.gateways.nginx import (
    NginxError,
    NginxServer,
    UpstreamWatcher,
    parse_listen,
    render_config,
)

__all__ = ["register", "run"]

log = logging.getLogger("coterie.nginx")


def register(subparsers: Subparsers) -> None:
    """Add the ``nginx`` subcommand."""
    parser = subparsers.add_parser(
        "nginx",
        help="run nginx with an upstream that follows announced HTTP services",
        description=(
            "Start nginx on --listen with a least_conn upstream of every instance announced "
            "as --service (see `coterie announce`), and reload it on every change. With no "
            "instance the upstream is a placeholder marked down, so nginx answers 502."
        ),
    )
    parser.add_argument("--service", required=True, help="announced service name to follow")
    parser.add_argument(
        "--listen",
        default="127.0.0.1:8080",
        help="where nginx listens, HOST:PORT or PORT (default 127.0.0.1:8080)",
    )
    parser.add_argument(
        "--prefix",
        default=None,
        help="nginx prefix directory for config, pid, logs (default: a temporary one)",
    )
    parser.add_argument(
        "--nginx", default=None, help="nginx binary (default: found on PATH or /usr/sbin)"
    )
    parser.add_argument(
        "--proxy-timeout",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="seconds nginx waits for an instance (default 10)",
    )
    parser.add_argument(
        "--print-config", action="store_true", help="print the configuration with no instance, exit"
    )
    add_discovery_arguments(parser)
    parser.set_defaults(run=run, _parser=parser)


def run(args: argparse.Namespace) -> int:
    """Run ``coterie nginx``."""
    parser: argparse.ArgumentParser = args._parser
    try:
        listen = parse_listen(args.listen)
    except ValueError as exc:
        parser.error(str(exc))
    if args.print_config:
        sys.stdout.write(
            render_config(
                args.service,
                [],
                listen=listen,
                prefix=args.prefix or "/tmp/coterie-nginx",
                proxy_timeout=args.proxy_timeout,
            )
        )
        return 0
    try:
        discovery = discovery_options_from_args(args)
        discovery.resolve()
    except ValueError as exc:
        parser.error(str(exc))
    with contextlib.ExitStack() as cleanup:
        # A prefix of our own is removed however we return (a missing nginx too).
        prefix = args.prefix or cleanup.enter_context(
            tempfile.TemporaryDirectory(prefix="coterie-nginx-", ignore_cleanup_errors=True)
        )
        return _serve(args, listen, discovery, prefix)


def _serve(
    args: argparse.Namespace, listen: tuple[str, int], discovery: DiscoveryOptions, prefix: str
) -> int:
    try:
        nginx = NginxServer(prefix, args.nginx)
    except NginxError as exc:
        log.error("%s", exc)
        return 1
    watcher = UpstreamWatcher(
        args.service,
        nginx,
        listen=listen,
        discovery=discovery,
        proxy_timeout=args.proxy_timeout,
    )

    async def main(stop: asyncio.Event) -> int:
        try:
            await watcher.start()
        except (NginxError, OSError) as exc:
            log.error("%s", exc)
            await watcher.close()
            return 1
        except BaseException:
            await watcher.close()  # never leave nginx running
            raise
        log.info(
            "nginx for %r on http://%s:%d (prefix %s); waiting for announcements",
            args.service,
            *listen,
            nginx.prefix,
        )
        stopping = asyncio.ensure_future(stop.wait())
        died = asyncio.ensure_future(nginx.wait())
        try:
            await asyncio.wait({stopping, died}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
            died.cancel()
            await watcher.close()
        if died.done() and not died.cancelled():
            log.error("%s", died.result())
            return 1
        return 0

    return run_until_signal(main)
