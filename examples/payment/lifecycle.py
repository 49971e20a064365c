"""How the example's services start and stop.

Design: both programs (``payment_service.py``, ``validation_service.py``)
run through :func:`run_service` and serve with :func:`coterie.serve`, so they
fail and stop alike:

- a mistake at start (a port in use, an address that cannot be bound) is one
  line on stderr, ``<service>: <what went wrong>``, and exit code 1, never a
  traceback;
- the first SIGINT (Ctrl-C) or SIGTERM is :func:`coterie.serve`'s drain:
  ``/readyz`` 503, goodbye on the mesh, ``--grace`` seconds (default
  :data:`DEFAULT_GRACE`) for the work held, then what is left fails with an
  answer; the second exits at once (code 130 after SIGINT, 143 after
  SIGTERM).

In a container the same services run under ``coterie run`` (each module's
``service`` target; ``examples/payment/k8s/``).
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Coroutine
from typing import Any

__all__ = ["DEFAULT_GRACE", "add_serve_arguments", "run_service"]

#: Seconds work in progress gets after the first Ctrl-C.
DEFAULT_GRACE = 2.0


def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--grace SECONDS`` and ``--health-port PORT`` to a service's parser."""
    parser.add_argument(
        "--grace",
        type=float,
        default=DEFAULT_GRACE,
        metavar="SECONDS",
        help=(
            "after the first Ctrl-C or SIGTERM, seconds the work in progress gets to "
            f"finish (default {DEFAULT_GRACE:g}); a second Ctrl-C exits at once"
        ),
    )
    parser.add_argument(
        "--health-port",
        type=int,
        default=None,
        metavar="PORT",
        help="serve /livez and /readyz on PORT (docs/production.md)",
    )


def run_service(main: Coroutine[Any, Any, None], name: str) -> None:
    """Run a service's ``main`` to the end; a start-up mistake is one line and exit 1.

    Raises:
        SystemExit: With ``"<name>: <error>"`` for an :class:`OSError` (a port
            in use, ...), or 130 for a Ctrl-C before the service handles
            signals.
    """
    try:
        asyncio.run(main)
    except OSError as exc:
        # "[Errno 98] cannot listen on ..." reads better without the number.
        why = exc.strerror if exc.strerror and not exc.filename else str(exc)
        raise SystemExit(f"{name}: {why}") from None
    except KeyboardInterrupt:
        raise SystemExit(130) from None
