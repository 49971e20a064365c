"""The web monitor's page in a real headless Chromium.

A mesh in this process (a Requester and Responders, host scope, short hello
and status intervals), a Monitor with its MonitorServer on loopback, and
Chromium driven over the DevTools Protocol (:mod:`tests.web.chromium`). The
page is loaded once: every later change must arrive over its event stream, and
a marker set in the page after loading proves it was never reloaded.
"""

from __future__ import annotations

import asyncio
import json

import pytest

from coterie import Monitor, Requester, Responder
from coterie.web import MonitorServer
from tests.helpers import MS, DiscoveryFactory
from tests.web.chromium import Browser, chromium_path

pytestmark = pytest.mark.skipif(
    chromium_path() is None,
    reason="needs Debian's chromium (/usr/bin/chromium; scripts/system-deps.sh installs it)",
)

STATUS = 100 * MS  # seconds between status reports
#: A change must show on the page within a second of the monitor knowing it.
PAGE_LAG = 1000 * MS


def _graph_ids() -> str:
    return "[...document.querySelectorAll('#graph g.node')].map(g => g.dataset.nodeId).sort()"


def _table_ids() -> str:
    return "[...document.querySelectorAll('#nodes tbody tr')].map(r => r.dataset.nodeId).sort()"


def _shows(node_ids: list[str]) -> str:
    """JS: true when the graph and the table list exactly these nodes."""
    want = json.dumps(json.dumps(sorted(node_ids), separators=(",", ":")))
    return f"JSON.stringify({_graph_ids()}) === {want} && JSON.stringify({_table_ids()}) === {want}"


def _has_edge(a: str, b: str) -> str:
    return f'!!document.querySelector(\'#graph g.edge[data-from="{a}"][data-to="{b}"]\')'


async def test_page_shows_the_mesh_and_follows_it_live(disc: DiscoveryFactory) -> None:
    loop = asyncio.get_running_loop()
    async with (
        Monitor("web monitor", discovery=disc()) as mon,
        MonitorServer(mon, "127.0.0.1", 0) as server,
        Responder("validation service", discovery=disc()) as rep,
        Requester("payment service", discovery=disc(), status_interval=STATUS) as req,
        Browser() as browser,
    ):
        await req.wait_connected(1, timeout=5000 * MS)
        await mon.wait_until(lambda s: s.connections.get(req.id) == (rep.id,), 5000 * MS)

        await browser.navigate(server.url)
        await browser.evaluate("window.loadedOnce = true")
        # Both nodes, in the graph and in the table, and the link between them.
        await browser.wait_for(_shows([rep.id, req.id]), 5000 * MS, what="the first two nodes")
        await browser.wait_for(_has_edge(req.id, rep.id), 5000 * MS, what="the edge")
        await browser.wait_for(
            "document.getElementById('status').textContent === 'live'", 5000 * MS, what="live"
        )
        rows = await browser.evaluate(
            "[...document.querySelectorAll('#nodes tbody tr')].map("
            "r => [...r.cells].map(c => c.textContent))"
        )
        names = {row[0]: row for row in rows}
        assert names["validation service"][1:3] == ["responder", rep.id[:8]]
        assert names["validation service"][4] == str(rep.port)
        assert names["payment service"][7] == f"validation service ({rep.id[:8]})"
        assert "not known" in await browser.evaluate("document.getElementById('rates').textContent")

        # A second responder joins: it shows within a second of the monitor seeing it.
        async with Responder("validation service", discovery=disc()) as rep2:
            await mon.wait_until(lambda s: rep2.id in s.nodes, 5000 * MS)
            seen = loop.time()
            await browser.wait_for(_shows([rep.id, rep2.id, req.id]), PAGE_LAG, what="the joiner")
            joined_lag = loop.time() - seen
            await mon.wait_until(lambda s: len(s.connections.get(req.id, ())) == 2, 5000 * MS)
            await browser.wait_for(_has_edge(req.id, rep2.id), PAGE_LAG, what="its edge")
        # ... and leaves (goodbye): it disappears, with its edge, without a reload.
        await mon.wait_until(lambda s: rep2.id not in s.nodes, 5000 * MS)
        gone = loop.time()
        await browser.wait_for(_shows([rep.id, req.id]), PAGE_LAG, what="the leaver gone")
        left_lag = loop.time() - gone
        assert not await browser.evaluate(_has_edge(req.id, rep2.id))
        assert await browser.evaluate("window.loadedOnce === true"), "the page was reloaded"

    assert joined_lag < PAGE_LAG and left_lag < PAGE_LAG


async def test_page_says_when_the_server_stops(disc: DiscoveryFactory) -> None:
    async with Monitor("web monitor", discovery=disc()) as mon, Browser() as browser:
        server = MonitorServer(mon, "127.0.0.1", 0)
        await server.start()
        try:
            await browser.navigate(server.url)
            await browser.wait_for(
                "document.getElementById('status').textContent === 'live'", 5000 * MS
            )
            assert "No nodes yet" in await browser.evaluate(
                "document.getElementById('graph').textContent"
            )
        finally:
            await server.close()
        status = await browser.wait_for(
            "document.getElementById('status').textContent.startsWith('live') ? ''"
            " : document.getElementById('status').textContent",
            5000 * MS,
        )
        assert status.startswith(("reconnecting", "disconnected"))
