"""MonitorServer over HTTP: the page, its assets, the view, the event stream, its bounds."""

from __future__ import annotations

import asyncio
import json
import logging
import re
from typing import Any

import aiohttp
import pytest

from coterie import Monitor, Requester, Responder
from coterie.cli.monitor import KEY_NOTE
from coterie.components.monitor import TABLE_COLUMNS, LinkRate, MonitorSnapshot, NodeInfo
from coterie.web import MonitorServer, view
from coterie.web.server import RATES_UNKNOWN
from tests.helpers import MS, DiscoveryFactory, wait_for

STATUS = 100 * MS


async def _next_view(content: aiohttp.StreamReader, timeout: float = 5000 * MS) -> dict[str, Any]:
    """Read server-sent events until the next ``view`` event; return its data."""
    event = ""
    async with asyncio.timeout(timeout):
        while True:
            line = (await content.readline()).decode()
            if not line:
                raise EOFError("the event stream ended")
            if line.startswith("event: "):
                event = line[7:].strip()
            elif line.startswith("data: ") and event == "view":
                data: dict[str, Any] = json.loads(line[6:])
                return data


def _info(node_id: str, name: str, role: str, **kw: Any) -> NodeInfo:
    fields: dict[str, Any] = {
        "address": "127.0.0.1",
        "port": None,
        "host_name": "h",
        "process_id": "p",
        "key": "$$",
        "namespace": None,
        "advertisement": {},
        "connections": (),
    }
    fields.update(kw)
    return NodeInfo(id=node_id, name=name, role=role, **fields)


def test_view_is_the_table_plus_the_graph() -> None:
    rep, req = "r" * 36, "q" * 36
    snap = MonitorSnapshot(
        nodes={
            rep: _info(rep, "validation service", "responder", port=8000, namespace="cards"),
            req: _info(req, "payment service", "requester", connections=(rep,)),
        },
        connections={req: (rep,)},
    )
    data = view(snap, monitor="mon", version=7)
    assert data["title"] == "2 node(s), 1 link(s)"
    assert (data["monitor"], data["version"]) == ("mon", 7)
    assert data["columns"] == list(TABLE_COLUMNS)
    assert [r["cells"] for r in data["rows"]] == [list(r) for r in snap.rows()]
    assert [r["id"] for r in data["rows"]] == [rep, req]
    assert data["rows"][1]["cells"][-1] == "validation service (rrrrrrrr)"
    assert data["nodes"][0] == {
        "id": rep,
        "name": "validation service",
        "role": "responder",
        "namespace": "cards",
        "address": "127.0.0.1",
        "port": 8000,
        "key": "$$",
    }
    # Without counts (a Node cote reporter) rates are not known, and the view says so.
    assert data["edges"] == [{"from": req, "to": rep, "rate": None, "errors": None}]
    assert data["rates"] == RATES_UNKNOWN and "not known" in RATES_UNKNOWN
    # With them (a coterie requester's reports), requests and errors a second.
    counted = MonitorSnapshot(snap.nodes, snap.connections, {(req, rep): LinkRate(12.345, 0.5)})
    assert view(counted)["edges"] == [{"from": req, "to": rep, "rate": 12.35, "errors": 0.5}]


def test_arguments_are_checked() -> None:
    mon = Monitor("m")
    with pytest.raises(ValueError, match="max_clients"):
        MonitorServer(mon, max_clients=0)
    with pytest.raises(ValueError, match="min_interval"):
        MonitorServer(mon, min_interval=-1)
    with pytest.raises(ValueError, match="heartbeat"):
        MonitorServer(mon, heartbeat=0)
    server = MonitorServer(mon)
    assert (server.host, server.port, server.url) == ("127.0.0.1", 5555, "http://127.0.0.1:5555/")
    assert MonitorServer(mon, "::1", 80).url == "http://[::1]:80/"


async def test_page_assets_and_view(disc: DiscoveryFactory) -> None:
    async with (
        Monitor("mon", discovery=disc()) as mon,
        MonitorServer(mon, "127.0.0.1", 0) as server,
        Responder("</script><b>x & y", discovery=disc()) as rep,
        aiohttp.ClientSession() as http,
    ):
        assert server.port != 0 and server.url == f"http://127.0.0.1:{server.port}/"
        await mon.wait_until(lambda s: rep.id in s.nodes, 5000 * MS)
        async with http.get(server.url) as resp:
            assert resp.status == 200
            assert resp.content_type == "text/html"
            assert "default-src 'none'" in resp.headers["Content-Security-Policy"]
            page = await resp.text()
        # The Key column's $$ is explained, as under the terminal table.
        assert " ".join(KEY_NOTE.split()) in " ".join(page.split())
        # No CDN, no inline script: the page loads only its own two files.
        assert re.findall(r'(?:src|href)="([^"]+)"', page) == ["monitor.css", "monitor.js"]
        inlined = re.search(
            r'<script id="initial-view" type="application/json">(.*?)</script>', page
        )
        assert inlined is not None
        # A hostile name cannot close the script element; it round-trips as text.
        assert "</script><b>" not in inlined.group(1)
        names = [n["name"] for n in json.loads(inlined.group(1))["nodes"]]
        assert names == ["</script><b>x & y"]
        for asset, kind in (("monitor.js", "text/javascript"), ("monitor.css", "text/css")):
            async with http.get(server.url + asset) as resp:
                assert resp.status == 200 and resp.content_type == kind
                body = await resp.text()
                assert "http://" not in body.replace("http://www.w3.org/2000/svg", "")
        async with http.get(server.url + "view.json") as resp:
            data = await resp.json()
        assert [n["id"] for n in data["nodes"]] == [rep.id]
        async with http.get(server.url + "nosuch") as resp:
            assert resp.status == 404


async def test_event_stream_follows_changes(disc: DiscoveryFactory) -> None:
    loop = asyncio.get_running_loop()
    async with (
        Monitor("mon", discovery=disc()) as mon,
        MonitorServer(mon, "127.0.0.1", 0, min_interval=20 * MS) as server,
        aiohttp.ClientSession() as http,
        http.get(server.url + "events") as stream,
    ):
        assert stream.content_type == "text/event-stream"
        first = await _next_view(stream.content)
        assert first["nodes"] == [] and server.clients == 1
        async with (
            Responder("validation service", discovery=disc()) as rep,
            Requester("payment service", discovery=disc(), status_interval=STATUS) as req,
        ):
            latest = first
            while {n["id"] for n in latest["nodes"]} != {rep.id, req.id} or not latest["edges"]:
                latest = await _next_view(stream.content)
            assert [(e["from"], e["to"]) for e in latest["edges"]] == [(req.id, rep.id)]
            assert latest["version"] > first["version"]
        await mon.wait_until(lambda s: not s.nodes, 5000 * MS)
        gone = loop.time()
        while latest["nodes"]:
            latest = await _next_view(stream.content, 1000 * MS)
        assert loop.time() - gone < 1000 * MS
    assert server.clients == 0


async def test_streams_are_bounded_and_refusals_logged(
    disc: DiscoveryFactory, caplog: pytest.LogCaptureFixture
) -> None:
    async with (
        Monitor("mon", discovery=disc()) as mon,
        MonitorServer(mon, "127.0.0.1", 0, max_clients=2) as server,
        aiohttp.ClientSession() as http,
        http.get(server.url + "events") as one,
        http.get(server.url + "events") as two,
    ):
        await _next_view(one.content)
        await _next_view(two.content)
        with caplog.at_level(logging.WARNING, logger="coterie.web"):
            async with http.get(server.url + "events") as three:
                assert three.status == 503
                assert "too many viewers" in await three.text()
        assert server.refused == 1 and server.clients == 2
        lines = [r.getMessage() for r in caplog.records if r.name == "coterie.web"]
        assert len(lines) == 1
        assert "refused an event stream from 127.0.0.1: 2 open, max_clients is 2" in lines[0]
        # One viewer leaves: it stops counting at once, and the next one is served.
        one.close()
        await wait_for(lambda: server.clients == 1, what="the stream that left uncounted")
        async with http.get(server.url + "events") as four:
            assert four.status == 200
            await _next_view(four.content)
            assert server.clients == 2


async def test_close_ends_open_streams_and_frees_the_port(disc: DiscoveryFactory) -> None:
    async with Monitor("mon", discovery=disc()) as mon, aiohttp.ClientSession() as http:
        server = await MonitorServer(mon, "127.0.0.1", 0, heartbeat=60).start()
        with pytest.raises(RuntimeError, match="already started"):
            await server.start()
        async with http.get(server.url + "events") as stream:
            await _next_view(stream.content)
            loop = asyncio.get_running_loop()
            started = loop.time()
            await server.close()
            async with asyncio.timeout(3000 * MS):
                assert (await stream.content.read()).strip() == b""  # the rest, then the end
            assert stream.content.at_eof()
            assert loop.time() - started < 3000 * MS
        await server.close()  # twice is fine
        # The port is free again, and a second server on a taken port fails clearly.
        async with MonitorServer(mon, "127.0.0.1", server.port) as again:
            with pytest.raises(OSError):
                await MonitorServer(mon, "127.0.0.1", again.port).start()
        assert mon.snapshot().nodes == {}


async def test_monitor_off_change_and_rows(disc: DiscoveryFactory) -> None:
    """The two Monitor additions the server relies on."""
    async with Monitor("mon", discovery=disc()) as mon:
        kept: list[str] = []
        dropped: list[str] = []
        mon.on_change(lambda kind, node_id: kept.append(kind))
        handler = mon.on_change(lambda kind, node_id: dropped.append(kind))
        mon.off_change(handler)
        mon.off_change(handler)  # a second time is ignored
        async with Requester("client", discovery=disc(), status_interval=STATUS) as req:
            snap = await mon.wait_until(lambda s: s.connections.get(req.id) == (), 5000 * MS)
        assert kept and not dropped
        # "(none)": it reported no link; "-": no report (yet).
        assert snap.rows()[0][-1] == "(none)"
        assert MonitorSnapshot(nodes=snap.nodes).rows()[0][-1] == "-"
