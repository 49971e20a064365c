"""Serving components in production: signals, drain, and health probes.

Design: :func:`serve` runs components until SIGTERM or SIGINT, then stops
them in an order a load balancer and the mesh can follow:

1. ``/readyz`` turns 503 at once, and stays so for :data:`UNREADY_LEAD`
   seconds (counted within the grace) while the components still serve, so a
   probe or an orchestrator sees the service leave before the mesh does;
2. every :class:`~coterie.Responder` closes: it says goodbye on the mesh
   (requesters stop sending to it), takes nothing new and finishes what it
   holds, within what is left of ``grace``; an ``on_stop`` hook (an HTTP
   front end's own drain) runs alongside;
3. then (or when the grace ends) the other components close, requesters
   last so handlers still finishing can call out; what a requester still
   holds then fails with :class:`~coterie.NotRunningError`, which a handler
   (or the ``on_stop`` hook's HTTP handlers) can still answer with;
4. what is left :data:`_CLOSE_SLACK` seconds later is cancelled, and
   :func:`serve` returns.

A second signal exits the process at once (``128 + signal``).

The probes live in :class:`Health`, an HTTP server on a thread of its own,
so it answers even while the event loop is blocked: the loop stamps a
heartbeat every :data:`HEARTBEAT` seconds, and ``/livez`` is 503 when the
last stamp is older than :data:`LIVENESS_BOUND`. Readiness is worked out on
the loop at each beat (every responder started, i.e. listening and
announced; every requester sees a responder for each type it declares with
``requests=``) and read by the thread as one flag. ``/metrics`` is served on
the same port when a :class:`coterie.metrics.Metrics` is given, so one port
carries the probes and the scrape.

``coterie run MODULE:ATTR`` (:mod:`coterie.cli.run`) is this in a command,
with ``--workers N`` processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.server
import logging
import os
import signal
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

from coterie.components.base import Component
from coterie.components.responder import Responder

if TYPE_CHECKING:
    from coterie.metrics import Metrics

__all__ = [
    "DEFAULT_GRACE",
    "HEARTBEAT",
    "LIVENESS_BOUND",
    "UNREADY_LEAD",
    "Health",
    "Serving",
    "quit_at_once",
    "serve",
]

log = logging.getLogger("coterie.serving")

#: Seconds requests in flight get to finish after the first signal.
DEFAULT_GRACE = 10.0
#: ``/livez`` is 503 when the event loop has not stamped its heartbeat for this long.
LIVENESS_BOUND = 1.0
#: Seconds between two heartbeats of the event loop.
HEARTBEAT = 0.1
#: Seconds ``/readyz`` is 503 before the goodbye, while still serving (within the grace).
UNREADY_LEAD = 0.1
#: Seconds, beyond the grace, that closing may take before it is cut short.
_CLOSE_SLACK = 0.5
#: The signals that drain (the first) and quit (the second).
SIGNALS = (signal.SIGTERM, signal.SIGINT)


def quit_at_once(sig: signal.Signals) -> None:
    """The second signal: say so and exit the process now, with ``128 + sig``."""
    log.warning("%s again: quitting at once", sig.name)
    logging.shutdown()
    os._exit(128 + int(sig))


class Health:
    """``/livez``, ``/readyz`` and (optionally) ``/metrics`` from a thread-side HTTP server.

    The event loop calls :meth:`beat`; the server thread only reads what it
    stored, so a blocked loop shows as a stale heartbeat, never as a hang.

    Args:
        port: TCP port; 0 picks a free one (see :attr:`port`).
        host: Address to listen on.
        metrics: Served on ``/metrics`` when given.
        bound: Seconds without a heartbeat after which ``/livez`` is 503.
    """

    def __init__(
        self,
        port: int,
        host: str = "0.0.0.0",
        *,
        metrics: Metrics | None = None,
        bound: float = LIVENESS_BOUND,
    ) -> None:
        self.bound = bound
        self.metrics = metrics
        #: Whether the service says it is ready (set from the event loop).
        self.ready = False
        #: Set at the first signal: ``/readyz`` is 503 from then on.
        self.stopping = False
        self._beat = time.monotonic()
        health = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path == "/livez":
                    self._answer(*health.liveness())
                elif path == "/readyz":
                    self._answer(*health.readiness())
                elif path == "/metrics" and health.metrics is not None:
                    body, content_type = health.metrics.exposition(self.headers.get("Accept"))
                    self._send(200, body, content_type)
                else:
                    self._answer(404, "not found: try /livez or /readyz\n")

            def _answer(self, status: int, text: str) -> None:
                self._send(status, text.encode(), "text/plain; charset=utf-8")

            def _send(self, status: int, body: bytes, content_type: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                """Probes come every few seconds: not worth a log line each."""

        self._server = http.server.ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self.host = host
        self.port: int = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="coterie-health", daemon=True
        )
        self._thread.start()

    def beat(self) -> None:
        """Stamp the heartbeat (the event loop calls this)."""
        self._beat = time.monotonic()

    def liveness(self) -> tuple[int, str]:
        """``/livez``: the status and text, from the heartbeat's age."""
        age = time.monotonic() - self._beat
        if age > self.bound:
            return 503, f"not live: the event loop has not responded for {age:.1f} s\n"
        return 200, "live\n"

    def readiness(self) -> tuple[int, str]:
        """``/readyz``: the status and text."""
        if self.stopping:
            return 503, "not ready: stopping\n"
        status, text = self.liveness()
        if status != 200:
            return status, text
        if not self.ready:
            return 503, "not ready: starting, or a declared request type has no responder\n"
        return 200, "ready\n"

    def close(self) -> None:
        """Stop serving and release the port."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def ready(components: Sequence[Component]) -> bool:
    """Whether every component is started and every requester is served.

    A started responder listens and has announced itself; a requester is
    served when, for each type it declares (``Requester(requests=[...])``),
    it sees a responder.
    """
    for component in components:
        if component.discovery is None:  # not started (or closed)
            return False
        serves: Callable[[str], bool] | None = getattr(component, "serves", None)
        if serves is not None:
            declared = component.advertisement.get("requests") or ()
            if not all(serves(kind) for kind in declared):
                return False
    return True


class Serving:
    """Runs components until a signal, then drains them (see the module doc).

    :func:`serve` is the public front; ``coterie run`` uses this class to
    also hear of readiness changes (``on_ready``) and to stop on its own
    ``stop`` event.

    Args:
        components: What to serve; started here if not yet.
        grace: Seconds work in progress gets after the first signal.
        health: The probes' server, or ``None`` for none.
        on_stop: Awaited at the first signal, alongside the responders'
            drain and within the grace (an HTTP front end's own drain).
        on_ready: Called with each change of readiness.
    """

    def __init__(
        self,
        components: Sequence[Component],
        *,
        grace: float = DEFAULT_GRACE,
        health: Health | None = None,
        on_stop: Callable[[], Awaitable[None]] | None = None,
        on_ready: Callable[[bool], None] | None = None,
    ) -> None:
        if grace < 0:
            raise ValueError(f"grace must be zero or more seconds, got {grace!r}")
        for component in components:
            if not isinstance(component, Component):
                raise TypeError(
                    f"serve() takes coterie components (Responder, Requester, ...), "
                    f"got {type(component).__name__}"
                )
        self.components = list(components)
        self.grace = grace
        self.health = health
        self.on_stop = on_stop
        self.on_ready = on_ready
        #: Set at the first signal (or by the caller): the drain begins.
        self.stop = asyncio.Event()
        self._ready = False
        self._signals = 0

    async def run(self) -> None:
        """Start, serve until :attr:`stop` is set or a signal comes, then drain."""
        loop = asyncio.get_running_loop()
        installed = []
        for sig in SIGNALS:
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, self._on_signal, sig)
                installed.append(sig)
        beating = asyncio.ensure_future(self._heartbeat())
        try:
            for component in self.components:
                await component.start()
            self._update()
            await self.stop.wait()
            await self._drain()
        finally:
            beating.cancel()
            for sig in installed:
                loop.remove_signal_handler(sig)
            # What the drain did not close (an error on the way, or a cut-short close).
            for component in self.components:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(component.close(), timeout=_CLOSE_SLACK)

    def _on_signal(self, sig: signal.Signals) -> None:
        self._signals += 1
        if self._signals == 1:
            log.info(
                "%s: draining: not ready; goodbye in %g s, then %g s for work in progress "
                "(%s again quits at once)",
                sig.name,
                min(UNREADY_LEAD, self.grace),
                self.grace,
                sig.name,
            )
            self.begin_stop()
            return
        quit_at_once(sig)

    def begin_stop(self) -> None:
        """Turn ``/readyz`` to 503 now and start the drain (as the first signal does)."""
        if self.health is not None:
            self.health.stopping = True
        self._set_ready(False)
        self.stop.set()

    async def _heartbeat(self) -> None:
        while True:
            if self.health is not None:
                self.health.beat()
            if not self.stop.is_set():
                self._update()
            await asyncio.sleep(HEARTBEAT)

    def _update(self) -> None:
        self._set_ready(ready(self.components))

    def _set_ready(self, now_ready: bool) -> None:
        if self.health is not None:
            self.health.ready = now_ready
        if now_ready != self._ready:
            self._ready = now_ready
            if self.on_ready is not None:
                self.on_ready(now_ready)

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.grace
        # Still serving, but unready: probes see it before the mesh does.
        await asyncio.sleep(min(UNREADY_LEAD, self.grace))
        responders = [c for c in self.components if isinstance(c, Responder)]
        others = [c for c in self.components if not isinstance(c, Responder)]
        for responder in responders:
            responder.close_timeout = max(0.0, deadline - loop.time())
        first = [asyncio.ensure_future(r.close()) for r in responders]
        if self.on_stop is not None:
            first.append(asyncio.ensure_future(self.on_stop()))
        if first:
            await asyncio.wait(first, timeout=max(0.0, deadline - loop.time()))
        # The others (requesters) close now, in the grace or at its end: what
        # they still hold fails with an error a handler can answer with.
        try:
            async with asyncio.timeout(_CLOSE_SLACK):
                for component in others:
                    await component.close()
                held = [task for task in first if not task.done()]
                if held:
                    await asyncio.wait(held)
        except TimeoutError:
            log.warning("the grace of %g s is over: cancelling what is left", self.grace)
        for task in first:
            if not task.done():
                task.cancel()
            elif not task.cancelled() and task.exception() is not None:
                error = task.exception()
                log.error("while stopping: %s", error, exc_info=error)


async def serve(
    *components: Component,
    grace: float = DEFAULT_GRACE,
    health_port: int | None = None,
    health_host: str = "0.0.0.0",
    metrics: Metrics | None = None,
    on_stop: Callable[[], Awaitable[None]] | None = None,
    on_ready: Callable[[bool], None] | None = None,
) -> None:
    """Serve ``components`` until SIGTERM or SIGINT, then drain them and return.

    The first signal turns ``/readyz`` to 503, then says goodbye on the mesh,
    lets requests in flight finish within ``grace`` seconds and cancels what
    is left; a second signal exits the process at once. See
    ``docs/production.md``.

    Args:
        *components: Responders, requesters, ...; started here if not yet.
        grace: Seconds requests in flight get after the first signal.
        health_port: Serve ``/livez`` and ``/readyz`` on this port (0 picks
            one); ``None`` for no probes.
        health_host: The address the probes listen on.
        metrics: Also serve ``/metrics`` on the probes' port.
        on_stop: Awaited at the first signal, within the grace, alongside the
            responders' drain: stop an HTTP front end here.
        on_ready: Called with each change of readiness (``/readyz``'s
            answer), from the first one on; signals are handled by then, so
            a service that says it is up here stops cleanly on Ctrl-C.

    Raises:
        TypeError: Something given is not a coterie component.
        ValueError: ``grace`` is negative.
    """
    health = None if health_port is None else Health(health_port, health_host, metrics=metrics)
    try:
        await Serving(
            components, grace=grace, health=health, on_stop=on_stop, on_ready=on_ready
        ).run()
    finally:
        if health is not None:
            health.close()
