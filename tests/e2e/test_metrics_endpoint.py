"""The payment service's ``GET /metrics``: what ``curl 127.0.0.1:3003/metrics`` shows in the demo.

The example scripts run as processes on a real mesh; the endpoint is read
over HTTP and parsed with prometheus_client's parser.
"""

from __future__ import annotations

import socket
from pathlib import Path

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.support import (
    GOOD,
    children,
    free_port,
    pay,
    start_payment,
    start_validator,
    wait_until_validated,
)

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(session: aiohttp.ClientSession, port: int) -> Samples:
    async with session.get(f"http://127.0.0.1:{port}/metrics") as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        text = await response.text()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def test_payment_service_serves_its_metrics(
    tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    dport, port = free_port(socket.SOCK_DGRAM), free_port()
    async with children(tmp_path) as procs:
        await start_payment(procs, dport, port)
        await start_validator(procs, dport, "v1", name="validator")
        await wait_until_validated(session, port, GOOD, procs=procs)
        before = await scrape(session, port)
        for _ in range(5):
            assert (await pay(session, port, GOOD)).status == 200
        assert (await pay(session, port, "4111111111111112")).status == 422  # refused: still ok
        after = await scrape(session, port)

    ok = ("coterie_requests_total", {"type": "validate", "outcome": "ok"})
    assert value(after, ok[0], **ok[1]) - value(before, ok[0], **ok[1]) == 6
    count = "coterie_request_duration_seconds_count"
    assert value(after, count, type="validate") - value(before, count, type="validate") == 6
    assert value(after, "coterie_requests_in_flight") == 0
    assert value(after, "coterie_links", role="requester") == 1
    assert value(after, "coterie_discovery_nodes", role="responder") == 1
    # prometheus_client's own process metrics come along on the default registry.
    assert value(after, "process_cpu_seconds_total") > 0
