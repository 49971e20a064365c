"""``coterie.serve`` in this process: a real SIGTERM, real sockets, real probes.

The runner's processes, load, rolling restarts and workers are in
tests/cli/test_run.py.
"""

from __future__ import annotations

import asyncio
import os
import signal

import pytest

import coterie
from coterie import Requester, Responder
from coterie.serving import Health
from tests.cli.test_run import http_get, status
from tests.helpers import MS, DiscoveryFactory, free_port, wait_for


async def test_serve_drains_on_sigterm_and_finishes_the_request_in_flight(
    disc: DiscoveryFactory,
) -> None:
    responder = Responder("v", host="127.0.0.1", discovery=disc())
    release = asyncio.Event()

    @responder.on("validate")
    async def validate(req: dict[str, object]) -> str:
        await release.wait()
        return "done"

    port = free_port()
    serving = asyncio.ensure_future(
        coterie.serve(responder, grace=5.0, health_port=port, health_host="127.0.0.1")
    )
    async with Requester("t", discovery=disc(), timeout=10_000 * MS) as requester:
        await wait_for(lambda: requester.serves("validate"))
        await wait_for(lambda: responder.discovery is not None)
        assert await http_get(port, "/readyz") == (200, "ready\n")
        pending = asyncio.ensure_future(requester.send({"type": "validate"}))
        await wait_for(lambda: responder.in_progress == 1)
        os.kill(os.getpid(), signal.SIGTERM)
        await wait_for(lambda: not requester.serves("validate"))  # the goodbye came
        assert await http_get(port, "/readyz") == (503, "not ready: stopping\n")
        assert not serving.done()  # the request in flight holds the drain
        release.set()
        assert await pending == "done"
        async with asyncio.timeout(5_000 * MS):
            await serving
    assert responder.links == frozenset()  # closed
    assert await status(port, "/livez") is None  # the probes' port is released


async def test_serve_says_what_it_cannot_serve() -> None:
    with pytest.raises(TypeError, match=r"coterie components .* got str"):
        await coterie.serve("responder")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="grace must be zero or more seconds, got -1"):
        await coterie.serve(Responder("v"), grace=-1)


def test_livez_is_503_when_the_heartbeat_is_older_than_the_bound() -> None:
    health = Health(0, "127.0.0.1", bound=0.05)
    try:
        health.beat()
        assert health.liveness() == (200, "live\n")
        health._beat -= 0.2  # as if the loop had been blocked for 0.2 s
        code, text = health.liveness()
        assert code == 503 and "has not responded for 0.2 s" in text
        health.ready = True
        assert health.readiness()[0] == 503  # not live: not ready either
        health.beat()
        assert health.readiness() == (200, "ready\n")
    finally:
        health.close()
