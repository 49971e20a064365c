"""Discovery that stays on this host unless told: options for the examples and the CLI.

Design: every process the demo, the examples and ``coterie announce`` /
``coterie nginx`` start must stay on this machine unless the user asks for
more. :func:`discovery_options` therefore sets the broadcast address to
``127.255.255.255`` unless the environment already chooses a scope (cote's
``COTE_BROADCAST_ADDRESS``, ``COTE_MULTICAST_ADDRESS`` or Redis variables).
:func:`add_discovery_arguments` adds the same few flags to any argparse
parser, so a test or the demo can give each run its own discovery port and
short intervals.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping

from coterie.discovery.options import DEFAULT_PORT, DiscoveryOptions
from coterie.settings import Settings

__all__ = [
    "HOST_SCOPE",
    "add_discovery_arguments",
    "discovery_options",
    "discovery_options_from_args",
]

#: Broadcast address that keeps discovery on this host.
HOST_SCOPE = "127.255.255.255"


def discovery_options(
    *,
    port: int | None = None,
    hello_interval: int | None = None,
    environ: Mapping[str, str] | None = None,
) -> DiscoveryOptions:
    """Discovery options in host scope unless the environment sets a scope.

    Args:
        port: Discovery UDP port; cote's 12345 when ``None``.
        hello_interval: Milliseconds between hellos; the check interval, node
            timeout and master timeout follow as 2x, 4x and 5x of it. ``None``
            keeps cote's timings (or the ``COTE_*`` variables).
        environ: Environment to consult; ``os.environ`` by default.

    Raises:
        ValueError: For a port or interval out of range.
    """
    options = DiscoveryOptions(port=port)
    if not Settings.from_environ(environ).scope_chosen:
        options.broadcast = HOST_SCOPE
    if hello_interval is not None:
        if hello_interval <= 0:
            raise ValueError(f"hello interval must be positive ms, got {hello_interval}")
        options.hello_interval = hello_interval
        options.check_interval = 2 * hello_interval
        options.node_timeout = 4 * hello_interval
        options.master_timeout = 5 * hello_interval
    return options


def add_discovery_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--discovery-port`` and ``--hello-interval`` to a parser."""
    group = parser.add_argument_group(
        "discovery",
        "Host scope (127.255.255.255) unless COTE_BROADCAST_ADDRESS or another "
        "cote scope variable says otherwise.",
    )
    group.add_argument(
        "--discovery-port",
        type=int,
        default=None,
        metavar="PORT",
        help=f"discovery UDP port (default {DEFAULT_PORT}, as cote)",
    )
    group.add_argument(
        "--hello-interval",
        type=int,
        default=None,
        metavar="MS",
        help="milliseconds between hellos; timeouts scale with it (default: cote's 2000)",
    )


def discovery_options_from_args(args: argparse.Namespace) -> DiscoveryOptions:
    """:func:`discovery_options` from the flags :func:`add_discovery_arguments` adds."""
    return discovery_options(port=args.discovery_port, hello_interval=args.hello_interval)
