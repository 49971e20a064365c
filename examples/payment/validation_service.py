"""The seed's validation service: a real Luhn check, on the mesh or over HTTP.

Mesh (the cote way): a coterie Responder for ``validate`` requests. Start as
many copies as you like; requesters spread requests over them::

    python examples/payment/validation_service.py

HTTP (the nginx way): ``GET /validate/<cardno>`` on a port, meant to run under
``coterie announce`` so ``coterie nginx`` puts it in the upstream::

    coterie announce --name validation-service --port 8101 -- \\
        python examples/payment/validation_service.py --http 8101

Either way it logs ``validating <cardno>`` and answers
``{"valid": bool, "reason": str | None, "by": "<its name>"}``.
Discovery stays on this host unless COTE_BROADCAST_ADDRESS says otherwise.
From the repository root, ``python -m examples.payment.validation_service``
works too.

Ctrl-C (or SIGTERM) stops it (:func:`coterie.serve`): it says goodbye,
takes no new requests and gives the ones it holds ``--grace`` seconds
(default 2); a second Ctrl-C quits at once. ``--health-port`` serves
``/livez`` and ``/readyz``. A port in use is one line and exit code 1.

In a container it runs under the runner, on every interface, with discovery
from the environment (``examples/payment/k8s/``)::

    coterie run examples.payment.validation_service:service --health-port 8081
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path

import coterie
from coterie import Responder
from coterie.gateways.hostscope import add_discovery_arguments, discovery_options_from_args

if not __package__:  # run as a script: import the example's modules from the repository root
    sys.path[0] = str(Path(__file__).resolve().parents[2])

from examples.payment.apps import serve_app, validation_app, validation_responder
from examples.payment.lifecycle import add_serve_arguments, run_service

log = logging.getLogger("payment")

_STOPPING = "%s: stopping: no new requests; %g s for those in progress (Ctrl-C again to quit)"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--id", default=f"validator-{os.getpid()}", help="name in answers and logs")
    parser.add_argument(
        "--http",
        type=int,
        metavar="PORT",
        default=None,
        help="serve GET /validate/<cardno> over HTTP on PORT instead of the mesh",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    add_serve_arguments(parser)
    add_discovery_arguments(parser)
    args = parser.parse_args(argv)
    if args.grace < 0:
        parser.error("--grace must not be negative")
    return args


async def service() -> Responder:
    """The target of ``coterie run``: the mesh validator on every interface."""
    return validation_responder(f"validator-{os.getpid()}", host="0.0.0.0")


async def main(args: argparse.Namespace) -> None:
    async def stopping() -> None:
        log.info(_STOPPING, args.id, args.grace)

    def say_once(line: Callable[[], None]) -> Callable[[bool], None]:
        # Said once serving (signals handled): a Ctrl-C after it always drains.
        said = False

        def ready(up: bool) -> None:
            nonlocal said
            if up and not said:
                said = True
                line()

        return ready

    if args.http is not None:
        runner, port = await serve_app(
            validation_app(args.id), args.host, args.http, shutdown_timeout=args.grace
        )

        async def stop_http() -> None:
            await stopping()
            await runner.cleanup()

        try:
            await coterie.serve(
                grace=args.grace, health_port=args.health_port, health_host=args.host,
                on_stop=stop_http,
                on_ready=say_once(lambda: log.info(
                    "%s: GET /validate/<cardno> on http://%s:%d", args.id, args.host, port
                )),
            )  # fmt: skip
        finally:
            await runner.cleanup()
        return
    responder = validation_responder(
        args.id, discovery=discovery_options_from_args(args), host=args.host
    )
    await coterie.serve(
        responder, grace=args.grace, health_port=args.health_port, health_host=args.host,
        on_stop=stopping,
        on_ready=say_once(lambda: log.info(
            "%s: answering 'validate' on the mesh (port %d)", args.id, responder.port
        )),
    )  # fmt: skip


if __name__ == "__main__":
    arguments = parse_args()
    logging.basicConfig(level=logging.INFO, format=f"[{arguments.id}] %(message)s")
    run_service(main(arguments), "validation service")
