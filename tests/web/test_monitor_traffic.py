"""The web monitor shows the traffic on each link, in a real headless Chromium.

A Python requester sends real requests (one in five fails in the handler) to
a Python responder, next to a real Node cote 1.2.0 requester linked to the
same responder, and a Python publisher sends events to a Python subscriber.
The page must show requests and errors a second on the coterie request edge,
events a second on the subscriber's, and "not known" on the Node one only;
when the traffic stops, the coterie edges fall to zero. Node cote broadcasts to 255.255.255.255, so
this runs only in the tests' private network namespace (it skips otherwise).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re

import pytest

from coterie import Monitor, Publisher, RemoteError, Requester, Responder, Subscriber
from coterie.web import MonitorServer
from coterie.web.server import RATES_UNKNOWN
from tests.helpers import MS, ms
from tests.interop.nodepeer import FAST_DISCOVERY, NodePeer, python_discovery
from tests.web.chromium import Browser, chromium_path

pytestmark = [
    pytest.mark.skipif(
        chromium_path() is None,
        reason="needs Debian's chromium (/usr/bin/chromium; scripts/system-deps.sh installs it)",
    ),
    pytest.mark.node,
]

STATUS = 300 * MS  # seconds between the Python requester's status reports
TRAFFIC = re.compile(r"(\d+(?:\.\d)?) req/s \u00b7 (\d+(?:\.\d)?) err/s")


def _label(a: str, b: str) -> str:
    """JS: the traffic label of the edge a -> b, or null while it is not drawn."""
    selector = json.dumps(f'#graph g.edge[data-from="{a}"][data-to="{b}"] text.rate')
    return f"(document.querySelector({selector}) || {{}}).textContent || null"


async def _traffic(requester: Requester) -> None:
    """A request every 10 ms, one in five of a kind the handler refuses."""
    n = 0
    while True:
        n += 1
        with contextlib.suppress(RemoteError):
            await requester.send({"type": "validate", "ok": n % 5 != 0}, timeout=5)
        await asyncio.sleep(10 * MS)


async def _events(publisher: Publisher) -> None:
    """An event every 10 ms."""
    while True:
        await publisher.publish("price", {"eur": 1})
        await asyncio.sleep(10 * MS)


def _validate(request: dict[str, object]) -> bool:
    if not request["ok"]:
        raise ValueError("refused")
    return True


async def test_edges_show_requests_and_errors_a_second_and_not_known_for_node() -> None:
    discovery = python_discovery()
    async with (
        Monitor("web monitor", discovery=discovery) as mon,
        MonitorServer(mon, "127.0.0.1", 0) as server,
        Responder("validation service", discovery=discovery) as rep,
        Requester("payment service", discovery=discovery, status_interval=STATUS) as req,
        Publisher("prices", discovery=discovery) as pub,
        Subscriber("price board", discovery=discovery, status_interval=STATUS) as sub,
        Browser() as browser,
    ):
        rep.on("validate", _validate)
        node = await NodePeer.start(
            "requester",
            {"name": "node client", "discovery": {**FAST_DISCOVERY, "statusInterval": ms(200)}},
        )
        try:
            await req.wait_connected(1, timeout=5000 * MS)
            snap = await mon.wait_until(
                lambda s: any(n.name == "node client" and n.connections for n in s.nodes.values()),
                10_000 * MS,
            )
            (node_client,) = [n.id for n in snap.nodes.values() if n.name == "node client"]
            await browser.navigate(server.url)
            await sub.wait_connected(1, timeout=5000 * MS)
            sender = asyncio.gather(_traffic(req), _events(pub))
            try:
                # Both rates known and non-zero on the coterie edge.
                await browser.wait_for(
                    f"/[1-9][0-9.]* req\\/s \u00b7 [1-9]/.test({_label(req.id, rep.id)})",
                    10_000 * MS,
                    what="requests and errors a second on the coterie edge",
                )
                text = await browser.evaluate(_label(req.id, rep.id))
                match = TRAFFIC.fullmatch(text)
                assert match is not None, text
                requests, errors = float(match[1]), float(match[2])
                assert 0 < errors < requests, text  # one in five fails
                # A subscriber's edge: events a second (the page draws it publisher -> subscriber).
                await browser.wait_for(
                    f"/^[1-9][0-9.]* events\\/s$/.test({_label(sub.id, pub.id)})",
                    10_000 * MS,
                    what="events a second on the subscriber's edge",
                )
                # The edge the Node cote requester reports: no counts, so not known.
                await browser.wait_for(
                    f"{_label(node_client, rep.id)} === 'not known'",
                    5000 * MS,
                    what="'not known' on the Node edge",
                )
                rates = await browser.evaluate("document.getElementById('rates').textContent")
                assert rates == RATES_UNKNOWN
            finally:
                sender.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await sender
            # The traffic stopped: two reports later, the edge says so.
            await browser.wait_for(
                f"{_label(req.id, rep.id)} === '0 req/s \u00b7 0 err/s'",
                5000 * MS,
                what="zero once the traffic stops",
            )
            assert await browser.evaluate(_label(node_client, rep.id)) == "not known"
            await browser.wait_for(
                f"{_label(sub.id, pub.id)} === '0 events/s'", 5000 * MS, what="no events"
            )
        finally:
            await node.close()
