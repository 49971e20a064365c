"""Prometheus metrics (coterie.metrics): scraped over HTTP and parsed, and free when off.

The scrape tests run a real responder and requester over sockets, serve the
metrics with :func:`coterie.metrics.serve` (prometheus_client's own server,
in its thread) and read them back with prometheus_client's parser, so the
names, labels and values are what Prometheus would see.
"""

from __future__ import annotations

import asyncio
import sys
import threading
import urllib.request
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

import coterie.metrics
from coterie import RemoteError, Requester, RequestTimeoutError, Responder
from coterie.metrics import OTHER, ComponentMetrics, Metrics
from coterie.testing import Mesh
from tests.helpers import MS, DiscoveryFactory, wait_for, work_every_role

SOON = 5_000 * MS

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    """Every sample of an exposition, by name and labels."""
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def scrape(url: str) -> Samples:
    """GET the endpoint from another thread, as Prometheus would, while the loop runs."""

    def get() -> str:
        with urllib.request.urlopen(url, timeout=SOON) as response:
            assert response.status == 200
            return str(response.read().decode())

    return parse(await asyncio.to_thread(get))


async def test_scrape_counts_outcomes_durations_gauges_and_links(disc: DiscoveryFactory) -> None:
    metrics = Metrics(registry=CollectorRegistry())
    release = asyncio.Event()
    with coterie.metrics.serve(0, metrics=metrics) as server:
        async with Responder("validation", discovery=disc(), metrics=metrics) as responder:
            responder.on("validate", lambda req: req["cardno"].startswith("4"))

            @responder.on("charge")
            def charge(req: dict[str, Any]) -> None:
                raise ValueError("card declined")

            @responder.on("hold")
            async def hold(req: dict[str, Any]) -> str:
                await release.wait()
                return "done"

            async with Requester("payment", discovery=disc(), metrics=metrics) as requester:
                await requester.wait_connected(1, timeout=SOON)
                for _ in range(5):
                    assert await requester.send({"type": "validate", "cardno": "4111"}) is True
                with pytest.raises(RemoteError):
                    await requester.send({"type": "charge"}, timeout=SOON)
                with pytest.raises(RequestTimeoutError):  # no responder serves it
                    await requester.send({"type": "refund"}, timeout=50 * MS)

                held = asyncio.ensure_future(requester.send({"type": "hold"}, timeout=SOON))
                await wait_for(lambda: requester.stats().in_flight == 1, SOON)
                during = await scrape(server.url)
                release.set()
                assert await held == "done"
                after = await scrape(server.url)

    # Requests sent, by type and outcome.
    assert value(after, "coterie_requests_total", type="validate", outcome="ok") == 5
    assert value(after, "coterie_requests_total", type="charge", outcome="error") == 1
    assert value(after, "coterie_requests_total", type="refund", outcome="timeout") == 1
    assert value(after, "coterie_requests_total", type="hold", outcome="ok") == 1
    # Answered requests are timed (ok and error, not the timeout).
    duration = "coterie_request_duration_seconds"
    assert value(after, f"{duration}_count", type="validate") == 5
    assert value(after, f"{duration}_bucket", type="validate", le="+Inf") == 5
    assert value(after, f"{duration}_count", type="charge") == 1
    assert value(after, f"{duration}_count", type="refund") == 0
    assert 0 < value(after, f"{duration}_sum", type="validate") < 5 * SOON
    # Requests answered by the responder.
    handled = "coterie_requests_handled_total"
    assert value(after, handled, type="validate", outcome="ok") == 5
    assert value(after, handled, type="charge", outcome="error") == 1
    assert value(after, handled, type="hold", outcome="ok") == 1
    # Gauges, read on the loop while the scrape came from the server's thread.
    assert value(during, "coterie_requests_in_flight") == 1
    assert value(during, "coterie_requests_in_progress") == 1
    assert value(during, "coterie_requests_waiting") == 0
    assert value(after, "coterie_requests_in_flight") == 0
    assert value(during, "coterie_links", role="requester") == 1
    assert value(during, "coterie_links", role="responder") == 1
    assert value(during, "coterie_links_opened_total", role="requester") == 1
    assert value(during, "coterie_discovery_nodes", role="responder") >= 1
    assert value(during, "coterie_discovery_nodes", role="requester") >= 1


async def test_pubsub_events_are_counted_by_name() -> None:
    metrics = Metrics(registry=CollectorRegistry())
    got: list[int] = []
    async with Mesh() as mesh:
        publisher = mesh.publisher("ticker", metrics=metrics)
        subscriber = mesh.subscriber("listener", metrics=metrics)
        mesh.monitor("monitor")
        subscriber.on("tick", got.append)
        await mesh.start()
        await publisher.wait_subscribers(1, timeout=SOON)
        await wait_for(lambda: subscriber.stats().monitors == 1, SOON)
        for n in range(3):
            await publisher.publish("tick", n)
        await publisher.publish("tock", 0)
        await wait_for(lambda: len(got) == 3, SOON)
        samples = parse(metrics.exposition()[0].decode())
    assert value(samples, "coterie_events_published_total", event="tick") == 3
    assert value(samples, "coterie_events_published_total", event="tock") == 1
    assert value(samples, "coterie_events_received_total", event="tick") == 3
    assert value(samples, "coterie_links", role="publisher") == 1
    # The subscriber's link to the monitor counts like its link to the publisher.
    assert value(samples, "coterie_links", role="subscriber") == 2
    assert value(samples, "coterie_links_opened_total", role="subscriber") == 2
    assert value(samples, "coterie_events_dropped_total") == 0
    closed = parse(metrics.exposition()[0].decode())
    assert value(closed, "coterie_links_closed_total", role="subscriber") == 2
    assert value(closed, "coterie_links", role="subscriber") == 0


async def test_reconnects_and_failovers_are_counted() -> None:
    metrics = Metrics(registry=CollectorRegistry())
    release = asyncio.Event()
    calls = 0
    async with Mesh() as mesh:
        responder = mesh.responder("validation", metrics=metrics)

        @responder.on("hold")
        async def hold(req: dict[str, Any]) -> str:
            nonlocal calls
            calls += 1
            await release.wait()
            return "done"

        requester = mesh.requester("payment", metrics=metrics)
        await mesh.start()
        await requester.wait_connected(1, timeout=SOON)
        held = asyncio.ensure_future(requester.send({"type": "hold"}, timeout=SOON))
        await wait_for(lambda: calls == 1, SOON)
        for link in responder.links:  # the link drops; the node lives on
            link.abort()
        await wait_for(lambda: calls == 2, SOON, what="the request resent on a new link")
        release.set()
        assert await held == "done"
        samples = parse(metrics.exposition()[0].decode())
    assert value(samples, "coterie_requests_resent_total") == 1
    assert value(samples, "coterie_link_reconnects_total", role="requester") == 1
    assert value(samples, "coterie_links_opened_total", role="requester") == 2
    assert value(samples, "coterie_links_closed_total", role="requester") >= 1
    assert value(samples, "coterie_requests_total", type="hold", outcome="ok") == 1


async def test_request_types_beyond_the_bound_count_as_other() -> None:
    metrics = Metrics(registry=CollectorRegistry(), max_labels=3)
    types = [f"t{n}" for n in range(6)]
    async with Mesh() as mesh:
        responder = mesh.responder("echo", metrics=metrics)
        for name in types:
            responder.on(name, lambda req: req["type"])
        requester = mesh.requester("client", metrics=metrics)
        await mesh.start()
        await requester.wait_connected(1, timeout=SOON)
        for name in types:
            assert await requester.send({"type": name}) == name
        samples = parse(metrics.exposition()[0].decode())
    sent = {
        dict(labels)["type"]: count
        for (name, labels), count in samples.items()
        if name == "coterie_requests_total"
    }
    assert sent == {"t0": 1, "t1": 1, "t2": 1, OTHER: 3}


def test_metrics_argument() -> None:
    registry = CollectorRegistry()
    metrics = Metrics(registry=registry)
    assert coterie.metrics.resolve(metrics) is metrics
    assert coterie.metrics.resolve(None) is None
    assert coterie.metrics.resolve(False) is None
    assert coterie.metrics.resolve(True) is coterie.metrics.default()
    assert coterie.metrics.default() is coterie.metrics.default()
    with pytest.raises(ValueError):  # the names clash: one Metrics per registry
        Metrics(registry=registry)
    with pytest.raises(TypeError):
        coterie.metrics.resolve("yes")  # type: ignore[arg-type]


def test_an_empty_metrics_scrapes_every_family() -> None:
    body, content_type = Metrics(registry=CollectorRegistry()).exposition()
    assert content_type.startswith("text/plain")
    names = {family.name for family in text_string_to_metric_families(body.decode())}
    assert {"coterie_requests", "coterie_request_duration_seconds", "coterie_links"} <= names


async def test_metrics_off_touches_no_prometheus_object(monkeypatch: pytest.MonkeyPatch) -> None:
    # prometheus_client cannot be imported, and every hook fails the test if called.
    for name in [m for m in sys.modules if m.split(".")[0] == "prometheus_client"]:
        monkeypatch.setitem(sys.modules, name, None)

    def touched(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a metrics hook ran with metrics off")

    for hook in (
        "__init__",
        "request_begin",
        "request_end",
        "handling",
        "refused",
        "published",
        "received",
        "link_opened",
        "link_closed",
        "started",
        "closed",
    ):
        monkeypatch.setattr(ComponentMetrics, hook, touched)
    monkeypatch.setattr(coterie.metrics, "default", touched)

    async with Mesh() as mesh:
        await work_every_role(mesh)


def test_a_scrape_reads_components_on_their_loop_or_as_last_read(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Scraped from this thread while the components run on a loop in another."""
    metrics = Metrics(registry=CollectorRegistry(), snapshot_timeout=0.2)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    mesh = Mesh()

    async def start() -> None:
        responder = mesh.responder("validation", metrics=metrics)
        responder.on("validate", lambda req: True)
        requester = mesh.requester("payment", metrics=metrics)
        await mesh.start()
        await requester.wait_connected(1, timeout=SOON)
        for _ in range(3):
            await requester.send({"type": "validate"})

    try:
        asyncio.run_coroutine_threadsafe(start(), loop).result(SOON)
        live = parse(metrics.exposition()[0].decode())
        unblock = threading.Event()
        loop.call_soon_threadsafe(unblock.wait, SOON)  # the loop is stuck
        stuck = parse(metrics.exposition()[0].decode())
        unblock.set()
    finally:
        asyncio.run_coroutine_threadsafe(mesh.close(), loop).result(SOON)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(SOON)
        loop.close()
    assert "reported as last read" in caplog.text
    for samples in (live, stuck):
        assert value(samples, "coterie_requests_total", type="validate", outcome="ok") == 3
        assert value(samples, "coterie_links", role="requester") == 1
