"""Forged status reports cannot grow the monitor's graph (issue 17 item 4).

Real sockets on loopback: a monitor and its web server, a legitimate
requester reporting its link, and an attacker that connects to the monitor's
port and sends 47,000 status reports with made-up ids (and some claiming the
requester's id) on one link.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import time

import aiohttp
import pytest

from coterie import Monitor, Requester, Responder
from coterie.protocol.framing import encode_frame
from coterie.web import MonitorServer
from tests.helpers import MS, DiscoveryFactory, wait_for

SOON = 5_000 * MS
REPORTS = 47_000

#: The attacker, in its own process as on another host: one link, reports
#: with made-up ids, and every 500th claims the requester's id.
ATTACKER = r"""
import socket, sys, uuid
from coterie.protocol.framing import encode_frame
port, victim, count = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
fake = [str(uuid.uuid4()) for _ in range(20)]
with socket.create_connection(("127.0.0.1", port)) as sock:
    for start in range(0, count, 500):
        batch = [encode_frame(["status", {"id": str(uuid.uuid4()), "nodes": fake}])
                 for _ in range(499)]
        batch.append(encode_frame(["status", {"id": victim, "nodes": fake}]))
        sock.sendall(b"".join(batch))
"""


async def test_forged_status_reports_leave_the_graph_and_the_page_small(
    disc: DiscoveryFactory,
) -> None:
    async with (
        Monitor(discovery=disc()) as mon,
        MonitorServer(mon, "127.0.0.1", 0) as server,
        Responder("validator", discovery=disc()) as rep,
        Requester("payments", discovery=disc(), status_interval=100 * MS) as req,
    ):
        await req.wait_connected(1, timeout=SOON)
        await mon.wait_until(lambda s: s.connections.get(req.id) == (rep.id,), SOON)
        timings: dict[str, list[float]] = {"/": [], "view.json": []}
        sizes: dict[str, int] = {}

        async def fetch_both(http: aiohttp.ClientSession) -> None:
            for path in ("", "view.json"):
                began = time.perf_counter()
                async with http.get(server.url + path) as response:
                    body = await response.read()
                timings[path or "/"].append((time.perf_counter() - began) * 1000)
                sizes[path or "/"] = max(sizes.get(path or "/", 0), len(body))

        async with aiohttp.ClientSession() as http:
            for _ in range(5):  # the same requests without the attack, for comparison
                await fetch_both(http)
            quiet = {path: sorted(ms)[2] for path, ms in timings.items()}
            timings = {"/": [], "view.json": []}
            attacker = await asyncio.create_subprocess_exec(
                sys.executable, "-c", ATTACKER, str(mon.port), req.id, str(REPORTS)
            )
            try:
                while attacker.returncode is None:
                    await fetch_both(http)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(attacker.wait(), 50 * MS)
                assert attacker.returncode == 0
                await asyncio.sleep(100 * MS)  # what it sent last is read
                snap = mon.snapshot()
            finally:
                if attacker.returncode is None:
                    attacker.kill()
                    await attacker.wait()
        slowest = {path: max(ms) for path, ms in timings.items()}
        median = {path: sorted(ms)[len(ms) // 2] for path, ms in timings.items()}
        print(
            f"\n  {REPORTS} forged reports: {len(snap.connections)} nodes with links, "
            f"{len(snap.edges)} edges; during it, page at most {sizes['/']} bytes, "
            f"{median['/']:.1f} ms median, {slowest['/']:.1f} ms slowest; view.json at most "
            f"{sizes['view.json']} bytes, {median['view.json']:.1f} ms median, "
            f"{slowest['view.json']:.1f} ms slowest ({len(timings['/'])} requests each); "
            f"without the attack {quiet['/']:.1f} and {quiet['view.json']:.1f} ms median"
        )
        assert sizes["/"] < 1_000_000 and sizes["view.json"] < 1_000_000
        assert set(snap.connections) <= {req.id}
        assert snap.connections.get(req.id) == (rep.id,)  # its own report, not the forgery


async def test_a_report_counts_once_its_node_is_discovered_and_for_its_own_id_only(
    disc: DiscoveryFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="coterie")
    async with Monitor(discovery=disc(), max_edges=3) as mon:
        _, writer = await asyncio.open_connection("127.0.0.1", mon.port)
        try:
            async with Responder("late", discovery=disc(), advertisement={"x": 1}) as rep:
                # Reported before the monitor knows it? Simulate: report for an id
                # the monitor does not know, then for the responder's.
                writer.write(encode_frame(["status", {"id": "made-up", "nodes": ["a"]}]))
                writer.write(encode_frame(["status", {"id": rep.id, "nodes": ["a"]}]))
                await writer.drain()
                await wait_for(lambda: mon.statuses == 2, SOON)
                assert "made-up" not in mon.snapshot().connections
                assert rep.id not in mon.snapshot().connections  # another id than the link's
                assert mon.ignored_statuses == 2
            # A link of its own reports for the responder: too many links are cut.
            async with Responder("known", discovery=disc()) as rep:
                await mon.wait_until(lambda s: rep.id in s.nodes, SOON)
                _, own = await asyncio.open_connection("127.0.0.1", mon.port)
                for _ in range(2):
                    own.write(encode_frame(["status", {"id": rep.id, "nodes": list("abcdef")}]))
                await own.drain()
                snap = await mon.wait_until(lambda s: rep.id in s.connections, SOON)
                assert snap.connections[rep.id] == ("a", "b", "c")
                await wait_for(lambda: mon.statuses == 4, SOON)
                assert caplog.text.count("max_edges") == 1
                own.close()
        finally:
            writer.close()


async def test_a_report_before_discovery_waits_for_it(disc: DiscoveryFactory) -> None:
    async with Monitor(discovery=disc()) as mon:
        # A node the monitor will discover only later: its id is chosen up front.
        rep = Responder("slow to appear", discovery=disc())
        _, writer = await asyncio.open_connection("127.0.0.1", mon.port)
        try:
            await rep.start()
            writer.write(encode_frame(["status", {"id": rep.id, "nodes": ["peer"]}]))
            await writer.drain()
            snap = await mon.wait_until(lambda s: rep.id in s.connections, SOON)
            assert snap.connections[rep.id] == ("peer",)
        finally:
            writer.close()
            await rep.close()
