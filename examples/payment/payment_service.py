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

Ctrl-C (or SIGTERM) stops it (:func:`coterie.serve`): no new payments, the
ones in progress get ``--grace`` seconds (default 2) and then a 503; a second
Ctrl-C quits at once. ``--health-port`` serves ``/livez`` and ``/readyz``
(ready once a validator is linked). A port in use is one line and exit code 1.

In a container it runs under the runner, on every interface, port 3003,
mesh validation, discovery from the environment (``examples/payment/k8s/``)::

    coterie run examples.payment.payment_service:service --health-port 8081
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import aiohttp

import coterie
import coterie.metrics
from coterie import Requester
from coterie.gateways.hostscope import add_discovery_arguments, discovery_options_from_args

if not __package__:  # run as a script: import the example's modules from the repository root
    sys.path[0] = str(Path(__file__).resolve().parents[2])

from examples.payment.apps import (
    HttpValidation,
    MeshValidation,
    Validate,
    Verdict,
    payment_app,
    serve_app,
)
from examples.payment.lifecycle import DEFAULT_GRACE, add_serve_arguments, run_service

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
    add_serve_arguments(parser)
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
            requests=["validate"],  # /readyz: ready once a validator is linked
        )
        async with requester:
            yield MeshValidation(requester, args.timeout)
    else:
        async with aiohttp.ClientSession() as session:
            yield HttpValidation(args.validation_url, session, args.timeout)


class Counted:
    """A :data:`Validate` that counts the payments waiting on it.

    Args:
        validate: The validation to count.
    """

    def __init__(self, validate: Validate) -> None:
        self.validate = validate
        #: Payments waiting for validation right now.
        self.held = 0

    async def __call__(self, cardno: str) -> Verdict:
        self.held += 1
        try:
            return await self.validate(cardno)
        finally:
            self.held -= 1


async def _start_http(
    validate: Validate,
    metrics: coterie.metrics.Metrics | None,
    host: str,
    port: int,
    grace: float,
    via: str = "the mesh",
) -> Callable[[], Awaitable[None]]:
    """Serve the payments; the function returned stops them (no new ones, held ones finish).

    Stopping twice is stopping once.
    """
    counted = Counted(validate)
    runner, bound = await serve_app(
        payment_app(counted, metrics), host, port, shutdown_timeout=grace + 1
    )
    log.info("payment service on http://%s:%d/pay/<cardno>, validating via %s", host, bound, via)
    stopped = False

    async def stop() -> None:
        nonlocal stopped
        if stopped:
            return
        stopped = True
        log.info(
            "stopping: no new payments; %d in progress get %g s to finish "
            "(Ctrl-C again to quit at once)",
            counted.held,
            grace,
        )
        await runner.cleanup()  # the port closes at once; held payments finish

    return stop


async def service() -> AsyncIterator[Requester]:
    """The target of ``coterie run``: port 3003 on every interface, validating over the mesh.

    At the first signal the HTTP side takes no new payments and finishes the
    ones it holds, within the runner's grace, before the requester closes.
    """
    exposed = process_metrics()
    requester = Requester("payment service", timeout=30.0, metrics=exposed, requests=["validate"])
    await requester.start()
    stop = await _start_http(
        MeshValidation(requester, 30.0), exposed, "0.0.0.0", 3003, DEFAULT_GRACE
    )
    try:
        yield requester
    finally:
        await stop()


async def main(args: argparse.Namespace) -> None:
    exposed = process_metrics()
    async with validation(args, exposed) as validate:
        target = "the mesh" if args.via == "mesh" else args.validation_url
        stop = await _start_http(validate, exposed, args.host, args.port, args.grace, target)
        components = [validate.requester] if isinstance(validate, MeshValidation) else []
        try:
            await coterie.serve(
                *components, grace=args.grace, health_port=args.health_port,
                health_host=args.host, on_stop=stop,
            )  # fmt: skip
        finally:
            await stop()


if __name__ == "__main__":
    arguments = parse_args()
    logging.basicConfig(level=logging.INFO, format=f"[payment/{arguments.via}] %(message)s")
    run_service(main(arguments), "payment service")
