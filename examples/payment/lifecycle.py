"""How the example's services start and stop.

Design: both programs (``payment_service.py``, ``validation_service.py``)
run through :func:`run_service`, so they fail and stop alike:

- a mistake at start (a port in use, an address that cannot be bound) is one
  line on stderr, ``<service>: <what went wrong>``, and exit code 1, never a
  traceback;
- the first SIGINT (Ctrl-C) or SIGTERM asks the service to stop: it stops
  taking work at once, gives the work it holds ``--grace`` seconds (default
  :data:`DEFAULT_GRACE`) to finish, fails what is left with an answer, and
  says so in one line; the second exits at once (code 130 after SIGINT, 143
  after SIGTERM).

:class:`Stopper` is the two-step signal handling; :class:`Draining` wraps the
payment service's :data:`~examples.payment.apps.Validate` so that payments
still waiting when the grace ends get a 503 answer instead of a dropped
connection.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
from collections.abc import Coroutine
from typing import Any

from examples.payment.apps import Validate, ValidationUnavailable, Verdict

__all__ = ["DEFAULT_GRACE", "Draining", "Stopper", "add_grace_argument", "run_service"]

#: Seconds work in progress gets after the first Ctrl-C.
DEFAULT_GRACE = 2.0


def add_grace_argument(parser: argparse.ArgumentParser) -> None:
    """Add ``--grace SECONDS`` to a service's parser."""
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


class Stopper:
    """SIGINT and SIGTERM: the first sets :attr:`requested`, the second exits at once.

    Args:
        name: The service's name, for the line said on a second signal.
        log: Where that line goes.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, name: str, log: logging.Logger) -> None:
        self.name = name
        self.log = log
        self.requested = asyncio.Event()

    def install(self) -> None:
        """Handle the signals in the running event loop."""
        loop = asyncio.get_running_loop()
        for sig in self.SIGNALS:
            loop.add_signal_handler(sig, self._on_signal, sig)

    def _on_signal(self, sig: signal.Signals) -> None:
        if not self.requested.is_set():
            self.requested.set()
            return
        self.log.warning("%s: %s again: quitting at once", self.name, sig.name)
        logging.shutdown()
        os._exit(128 + int(sig))

    async def wait(self) -> None:
        """Until the first signal."""
        await self.requested.wait()


class Draining:
    """A :data:`Validate` that can stop: new work refused, held work given a grace.

    Args:
        validate: The validation to wrap.
    """

    #: Why a payment that arrives while the service stops fails.
    STOPPING = "the payment service is stopping"
    #: Why a payment still waiting when the grace ends fails.
    STOPPED = "the payment service stopped before validation answered"

    def __init__(self, validate: Validate) -> None:
        self.validate = validate
        self._held: set[asyncio.Future[Verdict]] = set()
        self._stopping = False
        self._expired = asyncio.Event()

    @property
    def held(self) -> int:
        """Payments waiting for validation right now."""
        return len(self._held)

    async def __call__(self, cardno: str) -> Verdict:
        """Validate ``cardno``, unless the service stops first."""
        if self._stopping:
            raise ValidationUnavailable(self.STOPPING)
        inner = asyncio.ensure_future(self.validate(cardno))
        expired = asyncio.ensure_future(self._expired.wait())
        self._held.add(inner)
        try:
            await asyncio.wait({inner, expired}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            expired.cancel()
            self._held.discard(inner)
            if not inner.done():  # the grace ended, or the client went away
                inner.cancel()
        if not inner.done():
            raise ValidationUnavailable(self.STOPPED)
        return inner.result()

    async def drain(self, grace: float) -> None:
        """Refuse new payments; give held ones ``grace`` seconds, then fail them."""
        self._stopping = True
        if self._held:
            await asyncio.wait(set(self._held), timeout=grace)
        self._expired.set()
        # Let the failed payments' handlers write their answers.
        for _ in range(3):
            await asyncio.sleep(0)


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
