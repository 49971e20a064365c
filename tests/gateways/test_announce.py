"""``Announcer``: announced while the process lives and its port answers, withdrawn otherwise."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator

import pytest

from coterie.discovery.service import Discovery
from coterie.gateways.announce import Announcer, port_answers
from coterie.protocol.nodes import Node
from coterie.protocol.pairing import build_advertisement
from tests.e2e.support import EXAMPLES, PY
from tests.helpers import MS, discovery_port, fast_discovery, free_port, ms

#: Bound for what should happen promptly: a hello, a goodbye, a process exit.
SOON = 5_000 * MS


class Observer:
    """A discovery node recording http announcements as events."""

    def __init__(self, dport: int) -> None:
        adv = build_advertisement("", name="observer", namespace=None, key=None, environment="")
        # Silence alone takes 5000 * MS to drop a node here, so a quick
        # "removed" can only come from a goodbye.
        options = fast_discovery(
            dport, check_interval=ms(500), node_timeout=ms(5_000), master_timeout=ms(6_000)
        )
        self.discovery = Discovery(adv, options.resolve())
        self.events: asyncio.Queue[tuple[str, dict[str, object]]] = asyncio.Queue()
        self.discovery.on(self._on)

    def _on(self, event: str, node: Node) -> None:
        if node.advertisement.get("http") is True:
            self.events.put_nowait((event, node.advertisement))

    async def next(self, timeout: float = SOON) -> tuple[str, dict[str, object]]:
        return await asyncio.wait_for(self.events.get(), timeout)


@pytest.fixture
async def observer() -> AsyncIterator[Observer]:
    obs = Observer(discovery_port())
    await obs.discovery.start()
    yield obs
    await obs.discovery.close()


def _announcer(observer: Observer, command: list[str], port: int) -> Announcer:
    return Announcer(
        command,
        name="validation-service",
        port=port,
        discovery=fast_discovery(observer.discovery.settings.port),
        check_interval=100 * MS,
    )


async def test_announced_while_up_and_withdrawn_at_once_when_the_process_dies(
    observer: Observer,
) -> None:
    port = free_port()
    command = [PY, str(EXAMPLES / "validation_service.py"), "--http", str(port), "--id", "a"]
    announcer = _announcer(observer, command, port)
    running = asyncio.ensure_future(announcer.run())
    try:
        event, adv = await observer.next(timeout=2 * SOON)  # includes the child's start
        assert (event, adv["name"], adv["port"], adv["type"]) == (
            "added",
            "validation-service",
            port,
            "http",
        )
        assert announcer.announced
        assert announcer.pid is not None
        loop = asyncio.get_running_loop()
        started = loop.time()
        os.kill(announcer.pid, signal.SIGKILL)
        event, _ = await observer.next()
        # A goodbye, well before the observer's node timeout (5000 * MS).
        assert event == "removed"
        assert loop.time() - started < 2_000 * MS
        assert await asyncio.wait_for(running, SOON) == -signal.SIGKILL
    finally:
        announcer.stop()
        await asyncio.wait_for(asyncio.shield(running), 2 * SOON)
    assert not announcer.announced


_FLAKY_SERVER = """
import socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen()
time.sleep(float(sys.argv[2])); s.close()
time.sleep(30)
"""


async def test_withdrawn_when_the_port_stops_answering_though_the_process_lives(
    observer: Observer,
) -> None:
    port = free_port()
    up_for = 800 * MS
    announcer = _announcer(observer, [PY, "-c", _FLAKY_SERVER, str(port), str(up_for)], port)
    running = asyncio.ensure_future(announcer.run())
    try:
        assert (await observer.next(timeout=2 * SOON))[0] == "added"
        assert (await observer.next(timeout=SOON))[0] == "removed"
        assert not running.done()  # the process still runs
        assert announcer.announcements == 1
    finally:
        announcer.stop()
        code = await asyncio.wait_for(running, 2 * SOON)
    assert code == -signal.SIGTERM  # stop() terminated the child


async def test_never_announced_when_the_port_never_answers(observer: Observer) -> None:
    port = free_port()
    lives_for = 600 * MS
    announcer = _announcer(observer, [PY, "-c", f"import time; time.sleep({lives_for})"], port)
    assert await asyncio.wait_for(announcer.run(), 2 * SOON) == 0
    assert announcer.announcements == 0
    assert observer.events.empty()


async def test_port_answers() -> None:
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        assert await port_answers("127.0.0.1", port)
    assert not await port_answers("127.0.0.1", free_port())


def test_bad_arguments_are_clear() -> None:
    with pytest.raises(ValueError, match="nothing to run"):
        Announcer([], name="x", port=80)
    with pytest.raises(ValueError, match="port must be 1-65535"):
        Announcer(["true"], name="x", port=0)
