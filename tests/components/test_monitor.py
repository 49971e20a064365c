"""The Python Monitor, and the status reports Requesters and Subscribers send it.

Real sockets, host-scope discovery on a port of each test's own, a short
status interval, and event-driven waits (``Monitor.wait_until``).
"""

from __future__ import annotations

import asyncio

import pytest

from coterie import Monitor, Publisher, Requester, Responder, Subscriber
from coterie.components.monitorable import DEFAULT_STATUS_INTERVAL
from coterie.protocol.framing import encode_frame
from tests.helpers import MS, DiscoveryFactory

STATUS = 100 * MS  # between status reports in these tests
SOON = 5_000 * MS  # bound for what should happen promptly


async def test_monitor_sees_requester_responder_pair(disc: DiscoveryFactory) -> None:
    changes: list[tuple[str, str]] = []
    async with Monitor("mon", discovery=disc()) as mon:
        mon.on_change(lambda kind, node_id: changes.append((kind, node_id)))
        async with (
            Responder("time service", discovery=disc()) as rep,
            Requester("client", discovery=disc(), status_interval=STATUS) as req,
        ):
            rep.on("time", lambda r: 42)
            await req.wait_connected(1, timeout=SOON)
            snap = await mon.wait_until(lambda s: s.connections.get(req.id) == (rep.id,), SOON)
            assert mon.advertisement["type"] == "monitor"
            assert "axon_type" not in mon.advertisement
            assert mon.advertisement["port"] == mon.port
            assert snap.edges == [(req.id, rep.id)]
            r, q = snap.nodes[rep.id], snap.nodes[req.id]
            assert (r.name, r.role, r.port) == ("time service", "responder", rep.port)
            assert (q.name, q.role, q.port) == ("client", "requester", None)
            assert r.address.startswith("127.") or r.address == "0.0.0.0"
            assert q.connections == (rep.id,)
            assert r.connections == ()
            assert mon.id not in snap.nodes
            assert req.monitors == 1
            assert ("added", rep.id) in changes and ("status", req.id) in changes
            assert snap.by_role("requester") == [q]
            assert snap.name_of(rep.id) == "time service"
        # Both left (goodbye): the monitor forgets them and their edges.
        snap = await mon.wait_until(lambda s: not s.nodes, SOON)
        assert snap.connections == {}
        assert ("removed", req.id) in changes


async def test_subscriber_reports_its_publishers(disc: DiscoveryFactory) -> None:
    async with (
        Monitor("mon", discovery=disc()) as mon,
        Publisher("pub", discovery=disc()) as pub,
        Subscriber("sub", discovery=disc(), status_interval=STATUS) as sub,
    ):
        await sub.wait_connected(1, timeout=SOON)
        snap = await mon.wait_until(lambda s: s.connections.get(sub.id) == (pub.id,), SOON)
        assert snap.nodes[pub.id].role == "publisher"
        assert snap.nodes[sub.id].role == "subscriber"


async def test_status_follows_links(disc: DiscoveryFactory) -> None:
    async with (
        Monitor("mon", discovery=disc()) as mon,
        Requester("client", discovery=disc(), status_interval=STATUS) as req,
    ):
        # No responder yet: the requester reports an empty list.
        await mon.wait_until(lambda s: s.connections.get(req.id) == (), SOON)
        async with Responder("r1", discovery=disc()) as r1, Responder("r2", discovery=disc()) as r2:
            want = tuple(sorted((r1.id, r2.id)))
            await mon.wait_until(lambda s: s.connections.get(req.id) == want, SOON)
        await mon.wait_until(lambda s: s.connections.get(req.id) == (), SOON)


async def test_key_prefix_decides_who_reports(disc: DiscoveryFactory) -> None:
    async with (
        Monitor("all", discovery=disc()) as mon_all,
        Monitor("cards only", key="cards", discovery=disc()) as mon_cards,
        Requester("plain", discovery=disc(), status_interval=STATUS) as plain,
        Requester("cards", key="cards", discovery=disc(), status_interval=STATUS) as cards,
    ):
        # "$$" prefixes every key; "$$cards" only "$$cards".
        await mon_all.wait_until(lambda s: {plain.id, cards.id} <= s.connections.keys(), SOON)
        await mon_cards.wait_until(lambda s: cards.id in s.connections, SOON)
        await asyncio.sleep(3 * STATUS)
        snap = mon_cards.snapshot()
        assert plain.id not in snap.connections
        # Every node is listed whatever its key, as cote's monitor does.
        assert {plain.id, cards.id, mon_all.id} <= snap.nodes.keys()
        assert snap.nodes[mon_all.id].role == "monitor"
        assert (plain.monitors, cards.monitors) == (1, 2)


async def test_malformed_status_is_ignored_and_nulls_dropped(disc: DiscoveryFactory) -> None:
    async with Monitor("mon", discovery=disc()) as mon, Responder("r", discovery=disc()) as rep:
        await mon.wait_until(lambda s: rep.id in s.nodes, SOON)
        abc = rep.id
        _reader, writer = await asyncio.open_connection("127.0.0.1", mon.port)
        try:
            writer.write(encode_frame(("status", "not an object")))
            writer.write(encode_frame(("other", {"id": "x", "nodes": []})))
            writer.write(encode_frame(("status", {"id": abc, "nodes": ["n1", None, "n1"]})))
            await writer.drain()
            snap = await mon.wait_until(lambda s: abc in s.connections, SOON)
            assert snap.connections == {abc: ("n1",)}
            assert mon.statuses == 1
        finally:
            writer.close()
        # The reporting link closed: its edges go.
        await mon.wait_until(lambda s: not s.connections, SOON)


def _report(n1: object, n2: object, node_id: str = "abc") -> bytes:
    return encode_frame(("status", {"id": node_id, "nodes": ["n1", "n2"], "traffic": {
        "n1": n1, "n2": n2, "n3": {"requests": 5, "errors": 0},  # n3: not a reported link
    }}))  # fmt: skip


async def test_traffic_counts_become_rates_and_hostile_counts_are_ignored(
    disc: DiscoveryFactory,
) -> None:
    async with Monitor("mon", discovery=disc()) as mon, Responder("r", discovery=disc()) as rep:
        abc = rep.id  # reports count for a node the monitor discovered
        await mon.wait_until(lambda s: abc in s.nodes, SOON)
        _reader, writer = await asyncio.open_connection("127.0.0.1", mon.port)
        try:
            writer.write(_report({"requests": 10, "errors": 1}, {"requests": 0, "errors": 0}, abc))
            await writer.drain()
            await mon.wait_until(lambda s: abc in s.connections, SOON)
            assert mon.snapshot().rates == {}  # one report: no rate yet
            await asyncio.sleep(100 * MS)
            # n1 counted on; n2 sends a bool, which is no count.
            writer.write(
                _report({"requests": 40, "errors": 4}, {"requests": True, "errors": 0}, abc)
            )
            await writer.drain()
            snap = await mon.wait_until(lambda s: bool(s.rates), SOON)
            assert set(snap.rates) == {(abc, "n1")}
            rate = snap.rates[abc, "n1"]
            assert rate.errors * 10 == pytest.approx(rate.requests)  # 3 errors in 30
            assert 0 < rate.requests <= 30 / (100 * MS)
            await asyncio.sleep(10 * MS)
            # Counts that go down (a new link) or negative ones: no rate until the next.
            writer.write(_report({"requests": 2, "errors": 0}, {"requests": -1, "errors": 0}, abc))
            await writer.drain()
            await mon.wait_until(lambda s: not s.rates, SOON)
            # A report without the field (cote's) forgets them.
            writer.write(encode_frame(("status", {"id": abc, "nodes": ["n1"]})))
            await writer.drain()
            await mon.wait_until(lambda s: s.connections[abc] == ("n1",), SOON)
            assert mon.snapshot().rates == {}
        finally:
            writer.close()


def test_status_interval_option_and_environment() -> None:
    assert Requester(environ={}).status_interval == DEFAULT_STATUS_INTERVAL
    env = {"COTE_STATUS_INTERVAL": "250"}
    assert Requester("r", environ=env).status_interval == 0.25
    assert Subscriber("s", status_interval=2, environ=env).status_interval == 2
    with pytest.raises(ValueError, match="COTE_STATUS_INTERVAL"):
        Requester("r", environ={"COTE_STATUS_INTERVAL": "soon"})
    with pytest.raises(ValueError, match="status_interval must be positive"):
        Subscriber("s", status_interval=0, environ={})
