"""The web monitor's server: one page, a live graph and table of the mesh.

Design: :class:`MonitorServer` serves what a running :class:`~coterie.Monitor`
knows over HTTP with aiohttp. It owns no discovery of its own: it reads
:meth:`Monitor.snapshot` and listens to :meth:`Monitor.on_change`.

Routes:

- ``GET /``: the page. The current view is inlined in it as JSON, so the
  first paint already shows the mesh (and ``chromium --screenshot`` sees it).
- ``GET /monitor.js``, ``GET /monitor.css``: a small hand-written script and
  style sheet shipped in this package (``coterie/web/static``). The script
  draws the graph in plain SVG and the table as HTML. No CDN and no library:
  the page works offline, and a strict Content-Security-Policy allows
  nothing but this origin.
- ``GET /view.json``: the current view (:func:`view`), for scripts.
- ``GET /events``: server-sent events. A stream gets the whole view at once,
  then again after every change, at most one per ``min_interval`` (a burst
  of hellos is one update; a node joining or leaving shows well within a
  second of the monitor learning it). A viewer that disconnects cancels its
  stream's handler at once; a comment line every ``heartbeat`` seconds finds
  the ones whose connection died silently. The browser's ``EventSource``
  reconnects by itself when the server restarts.

Bounds: a stream queues nothing, it only remembers the version it last sent,
so a slow client gets the latest view and never a backlog. The view is
encoded once per change, not per client. At most ``max_clients`` streams are
open; the next one gets ``503`` and one warning line on the ``coterie.web``
logger, and :attr:`MonitorServer.refused` counts them.

Request rates: a coterie requester's status reports count the requests and
error replies on each of its links, and the monitor turns two reports into
rates (:class:`~coterie.components.monitor.LinkRate`): such an edge carries
``"rate"`` (requests a second) and ``"errors"`` (error replies a second).
A coterie subscriber's reports count events, shown as events a second.
cote's status reports name the links only, and the monitor sees no requests
itself, so an edge a Node cote peer reports (and any before its reporter's
second report) carries ``null`` for both, and the page says "not known"
there rather than guess.

Names, keys and namespaces come from the network: the script only ever sets
them as text (never as HTML), and the inlined JSON escapes ``<``, ``>`` and
``&``.
"""

from __future__ import annotations

import asyncio
import json
import logging
from importlib import resources
from types import TracebackType
from typing import Any, Self

from aiohttp import web

from coterie.components.monitor import TABLE_COLUMNS, LinkRate, Monitor, MonitorSnapshot

__all__ = ["DEFAULT_HOST", "DEFAULT_PORT", "RATES_UNKNOWN", "MonitorServer", "view"]

log = logging.getLogger("coterie.web")

#: Default address: loopback only.
DEFAULT_HOST = "127.0.0.1"
#: Default port: cote's monitor port.
DEFAULT_PORT = 5555

#: What the page says about request rates on edges.
RATES_UNKNOWN = (
    "Rates: requests and errors a second on each link a coterie requester reports, events a "
    "second on a coterie subscriber's; not known where a Node cote peer reports (its status "
    "names its links, not their traffic)."
)

_ASSETS = {
    "/monitor.js": ("monitor.js", "text/javascript; charset=utf-8"),
    "/monitor.css": ("monitor.css", "text/css; charset=utf-8"),
}
_VIEW_MARKER = "__INITIAL_VIEW__"
_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
_HEADERS = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}


def view(snap: MonitorSnapshot, *, monitor: str = "", version: int = 0) -> dict[str, Any]:
    """What the page shows for one snapshot, as JSON-ready data.

    Args:
        snap: The monitor's snapshot.
        monitor: The monitor's name, shown in the page's heading.
        version: Change counter; grows with every change the server sees.

    Returns:
        A dict with ``title``; ``columns`` and ``rows`` (each ``{"id",
        "cells"}``), the terminal view's table; ``nodes`` (``id``, ``name``,
        ``role``, ``namespace``, ``address``, ``port``, ``key``) in table
        order; ``edges`` (``from``, ``to``, ``rate``, ``errors``), the
        reported links, with requests and error replies a second, ``None``
        where not known (see the module doc); ``rates``, the sentence saying
        so; ``monitor`` and ``version``.
    """
    nodes = snap.sorted_nodes()
    links = sum(len(targets) for targets in snap.connections.values())
    return {
        "title": f"{len(snap.nodes)} node(s), {links} link(s)",
        "monitor": monitor,
        "version": version,
        "columns": list(TABLE_COLUMNS),
        "rows": [
            {"id": node.id, "cells": list(cells)}
            for node, cells in zip(nodes, snap.rows(), strict=True)
        ],
        "nodes": [
            {
                "id": node.id,
                "name": node.name,
                "role": node.role,
                "namespace": node.namespace,
                "address": node.address,
                "port": node.port,
                "key": node.key,
            }
            for node in nodes
        ],
        "edges": [_edge(a, b, snap.rates.get((a, b))) for a, b in snap.edges],
        "rates": RATES_UNKNOWN,
    }


def _edge(a: str, b: str, rate: LinkRate | None) -> dict[str, Any]:
    if rate is None:
        return {"from": a, "to": b, "rate": None, "errors": None}
    return {"from": a, "to": b, "rate": round(rate.requests, 2), "errors": round(rate.errors, 2)}


def _asset(name: str) -> bytes:
    return (resources.files(__package__ or "coterie.web") / "static" / name).read_bytes()


class MonitorServer:
    """Serves a monitor's view of the mesh as a live web page.

    The monitor's lifecycle stays the caller's: start it before (or with)
    the server and close it after. Usable as an async context manager::

        async with Monitor() as monitor, MonitorServer(monitor, port=5555) as server:
            print("open", server.url)
            await asyncio.Event().wait()

    Args:
        monitor: The monitor whose view to serve.
        host: Address to listen on; loopback by default. Anyone who can reach
            it sees the mesh's names and addresses.
        port: TCP port; 0 picks a free one (see :attr:`port` after start).
        max_clients: Most event streams open at once; more are refused with
            503 and a warning log line.
        min_interval: Least seconds between two updates to one client.
        heartbeat: Seconds between keep-alive comments on an idle stream.

    Raises:
        ValueError: For a non-positive ``max_clients`` or ``heartbeat``, or a
            negative ``min_interval``.
    """

    def __init__(
        self,
        monitor: Monitor,
        host: str = DEFAULT_HOST,
        port: int = DEFAULT_PORT,
        *,
        max_clients: int = 32,
        min_interval: float = 0.1,
        heartbeat: float = 10.0,
    ) -> None:
        if max_clients < 1:
            raise ValueError(f"max_clients must be at least 1, got {max_clients!r}")
        if not min_interval >= 0:
            raise ValueError(f"min_interval must not be negative, got {min_interval!r}")
        if not heartbeat > 0:
            raise ValueError(f"heartbeat must be positive seconds, got {heartbeat!r}")
        self.monitor = monitor
        self.host = host
        #: The TCP port; the real one once started (also when 0 was asked).
        self.port = port
        self.max_clients = max_clients
        self.min_interval = min_interval
        self.heartbeat = heartbeat
        #: Event streams refused because ``max_clients`` were open.
        self.refused = 0
        self._runner: web.AppRunner | None = None
        self._streams: set[web.StreamResponse] = set()
        self._version = 0
        self._wake = asyncio.Event()
        self._closing = False
        self._encoded: tuple[int, bytes] | None = None
        self._page = ""
        self._assets: dict[str, bytes] = {}

    # -- public ----------------------------------------------------------------

    @property
    def url(self) -> str:
        """The page's address, e.g. ``http://127.0.0.1:5555/``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    @property
    def clients(self) -> int:
        """Event streams open now."""
        return len(self._streams)

    async def start(self) -> Self:
        """Listen and serve.

        Raises:
            OSError: When the address cannot be bound (in use, not local).
            RuntimeError: When already started.
        """
        if self._runner is not None:
            raise RuntimeError("MonitorServer already started")
        self._page = _asset("index.html").decode()
        self._assets = {path: _asset(name) for path, (name, _) in _ASSETS.items()}
        app = web.Application()
        app.router.add_get("/", self._index)
        for path in _ASSETS:
            app.router.add_get(path, self._asset)
        app.router.add_get("/view.json", self._view_json)
        app.router.add_get("/events", self._events)
        # handler_cancellation: a viewer that goes away cancels its stream's
        # handler at once, so it stops counting against max_clients.
        runner = web.AppRunner(
            app,
            access_log=None,
            handle_signals=False,
            handler_cancellation=True,
            shutdown_timeout=2.0,
        )
        await runner.setup()
        try:
            site = web.TCPSite(runner, self.host, self.port)
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        address = runner.addresses[0]
        self.port = int(address[1])
        self._closing = False
        self.monitor.on_change(self._on_change)
        log.info("web monitor on %s", self.url)
        return self

    async def close(self) -> None:
        """End every event stream and stop listening. Safe to call twice."""
        runner, self._runner = self._runner, None
        if runner is None:
            return
        self.monitor.off_change(self._on_change)
        self._closing = True
        self._wake.set()
        await runner.cleanup()

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # -- changes ---------------------------------------------------------------

    def _on_change(self, kind: str, node_id: str) -> None:
        self._version += 1
        wake, self._wake = self._wake, asyncio.Event()
        wake.set()

    def _view(self) -> dict[str, Any]:
        return view(self.monitor.snapshot(), monitor=self.monitor.name, version=self._version)

    def _event(self) -> bytes:
        """The current view as one server-sent event, encoded once per version."""
        if self._encoded is None or self._encoded[0] != self._version:
            data = json.dumps(self._view(), separators=(",", ":"))
            self._encoded = (self._version, f"event: view\ndata: {data}\n\n".encode())
        return self._encoded[1]

    # -- handlers --------------------------------------------------------------

    async def _index(self, request: web.Request) -> web.Response:
        data = json.dumps(self._view(), separators=(",", ":"))
        # Inside <script type="application/json">: no "</script>" may appear.
        data = data.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
        return web.Response(
            text=self._page.replace(_VIEW_MARKER, data),
            content_type="text/html",
            charset="utf-8",
            headers={**_HEADERS, "Content-Security-Policy": _CSP},
        )

    async def _asset(self, request: web.Request) -> web.Response:
        _, content_type = _ASSETS[request.path]
        return web.Response(
            body=self._assets[request.path],
            headers={**_HEADERS, "Content-Type": content_type},
        )

    async def _view_json(self, request: web.Request) -> web.Response:
        return web.json_response(self._view(), headers=_HEADERS)

    async def _events(self, request: web.Request) -> web.StreamResponse:
        if self._closing:
            return web.Response(status=503, text="the web monitor is closing\n", headers=_HEADERS)
        if len(self._streams) >= self.max_clients:
            self.refused += 1
            log.warning(
                "web monitor: refused an event stream from %s: %d open, max_clients is %d",
                request.remote,
                len(self._streams),
                self.max_clients,
            )
            return web.Response(
                status=503,
                text=f"too many viewers: {self.max_clients} event streams are open\n",
                headers=_HEADERS,
            )
        response = web.StreamResponse(
            headers={**_HEADERS, "Content-Type": "text/event-stream", "X-Accel-Buffering": "no"}
        )
        self._streams.add(response)
        try:
            await response.prepare(request)
            # Reconnect within a second when the server comes back.
            await response.write(b"retry: 1000\n\n")
            sent = -1
            while not self._closing:
                wake = self._wake
                if sent != self._version:
                    sent = self._version
                    await response.write(self._event())
                    await asyncio.sleep(self.min_interval)
                    continue
                try:
                    async with asyncio.timeout(self.heartbeat):
                        await wake.wait()
                except TimeoutError:
                    await response.write(b": keep-alive\n\n")
        except ConnectionError:
            log.debug("web monitor: event stream to %s closed", request.remote)
        finally:
            self._streams.discard(response)
        return response
