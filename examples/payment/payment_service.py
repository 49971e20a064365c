"""The seed's payment service: ``GET /pay/<cardno>`` over HTTP, validating elsewhere.

The HTTP side is aiohttp: asyncio-native, so the web server, the HTTP client
and coterie share one event loop, and one package gives both server and
client.

Mesh (the cote way, port 3003): validation goes over coterie; when no
validator runs, a payment waits (up to ``--timeout`` seconds) and completes
as soon as one appears::

    python examples/payment/payment_service.py

nginx (the seed's other way, port 3000): validation goes to
``--validation-url`` (an nginx kept up to date by ``coterie nginx``); when no
validator runs, nginx answers 502 and the payment says so::

    python examples/payment/payment_service.py --via nginx

From the repository root, ``python -m examples.payment.payment_service`` works
too.

``GET /metrics`` serves Prometheus metrics (:mod:`coterie.metrics`): the
requester's requests by outcome, their latency, links and discovery, e.g.
``curl 127.0.0.1:3003/metrics``; it is left out when prometheus_client is not
installed.

Answers are JSON strings: ``"<cardno> validated"`` (200), or
``"<cardno> validation failed: <reason>"`` (422 refused card, 503 validation
unreachable). Never a 500.

Ctrl-C (or SIGTERM) stops it: no new payments, the ones in progress get
``--grace`` seconds (default 2) and then a 503; a second Ctrl-C quits at once.
A port in use is one line and exit code 1.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp

import coterie.metrics
from coterie import Requester
from coterie.gateways.hostscope import add_discovery_arguments, discovery_options_from_args

if not __package__:  # run as a script: import the example's modules from the repository root
    sys.path[0] = str(Path(__file__).resolve().parents[2])

from examples.payment.apps import (
    HttpValidation,
    MeshValidation,
    Validate,
    payment_app,
    serve_app,
)
from examples.payment.lifecycle import Draining, Stopper, add_grace_argument, run_service

log = logging.getLogger("payment")

DEFAULT_PORTS = {"mesh": 3003, "nginx": 3000}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--via", choices=("mesh", "nginx"), default="mesh", help="how to reach validation"
    )
    parser.add_argument(
        "--port", type=int, default=None, help="HTTP port (default 3003 mesh, 3000 nginx)"
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument(
        "--timeout",
        type=float,
        default=30.0,
        help="seconds a payment may take, waiting for a validator included (default 30)",
    )
    parser.add_argument(
        "--validation-url",
        default="http://127.0.0.1:8080",
        help="with --via nginx: where validation answers (default http://127.0.0.1:8080)",
    )
    add_grace_argument(parser)
    add_discovery_arguments(parser)
    args = parser.parse_args(argv)
    if args.timeout <= 0:
        parser.error("--timeout must be positive")
    if args.grace < 0:
        parser.error("--grace must not be negative")
    if args.port is None:
        args.port = DEFAULT_PORTS[args.via]
    return args


def process_metrics() -> coterie.metrics.Metrics | None:
    """The process-wide metrics, or ``None`` without prometheus_client."""
    try:
        return coterie.metrics.default()
    except ImportError:
        log.info("no /metrics: prometheus_client is not installed (pip install 'coterie[metrics]')")
        return None


@contextlib.asynccontextmanager
async def validation(
    args: argparse.Namespace, metrics: coterie.metrics.Metrics | None = None
) -> AsyncIterator[Validate]:
    if args.via == "mesh":
        requester = Requester(
            "payment service",
            discovery=discovery_options_from_args(args),
            timeout=args.timeout,
            metrics=metrics,
        )
        async with requester:
            yield MeshValidation(requester, args.timeout)
    else:
        async with aiohttp.ClientSession() as session:
            yield HttpValidation(args.validation_url, session, args.timeout)


async def main(args: argparse.Namespace) -> None:
    stopper = Stopper("payment service", log)
    stopper.install()
    exposed = process_metrics()
    async with validation(args, exposed) as validate:
        draining = Draining(validate)
        runner, port = await serve_app(
            payment_app(draining, exposed), args.host, args.port, shutdown_timeout=args.grace + 1
        )
        target = "the mesh" if args.via == "mesh" else args.validation_url
        log.info(
            "payment service on http://%s:%d/pay/<cardno>, validating via %s",
            args.host,
            port,
            target,
        )
        try:
            await stopper.wait()
            log.info(
                "stopping: no new payments; %d in progress get %g s to finish "
                "(Ctrl-C again to quit at once)",
                draining.held,
                args.grace,
            )
            for site in list(runner.sites):
                await site.stop()
            await draining.drain(args.grace)
        finally:
            await runner.cleanup()


if __name__ == "__main__":
    arguments = parse_args()
    logging.basicConfig(level=logging.INFO, format=f"[payment/{arguments.via}] %(message)s")
    run_service(main(arguments), "payment service")
