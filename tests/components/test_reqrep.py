"""Requester and Responder over real sockets, in host scope.

Every test gets its own discovery port, so nodes of one test (or of another
test run on the same host) never meet nodes of another. Discovery timings are
short; waits are event driven and every wait has a bound.
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import time
from collections import Counter
from typing import Any

import pytest

from coterie import (
    CoterieError,
    DiscoveryOptions,
    FrameTooLargeError,
    Node,
    RemoteError,
    Requester,
    RequestTimeoutError,
    Responder,
)

FAST = {"hello_interval": 100, "check_interval": 200, "node_timeout": 400, "master_timeout": 500}


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
def port() -> int:
    return free_udp_port()


def fast(port: int) -> DiscoveryOptions:
    return DiscoveryOptions(port=port, **FAST)


async def wait_for(predicate: Any, timeout: float = 5.0) -> None:
    """Poll a condition that has no event of its own (log text, table contents)."""
    async with asyncio.timeout(timeout):
        while not predicate():  # noqa: ASYNC110
            await asyncio.sleep(0.01)


async def test_sync_and_async_handlers(port: int) -> None:
    async with Responder("calc", discovery=fast(port)) as rep:
        rep.on("add", lambda req: req["a"] + req["b"])

        @rep.on("slow-echo")
        async def slow_echo(req: dict[str, Any]) -> dict[str, Any]:
            await asyncio.sleep(0.01)
            return {"echo": req["v"]}

        async with Requester("client", discovery=fast(port)) as req:
            await req.wait_connected(1, timeout=5)
            assert await req.send({"type": "add", "a": 2, "b": 3}, timeout=5) == 5
            assert await req.send({"type": "slow-echo", "v": [1, "x"]}, timeout=5) == {
                "echo": [1, "x"]
            }
            results = await asyncio.gather(
                *(req.send({"type": "add", "a": i, "b": i}, timeout=5) for i in range(50))
            )
            assert results == [2 * i for i in range(50)]
        assert rep.handled == 52
        assert sorted(rep.types) == ["add", "slow-echo"]
        assert rep.advertisement["respondsTo"] == ["add", "slow-echo"]


async def test_remote_error_carries_message_and_name(port: int) -> None:
    async with Responder("failing", discovery=fast(port)) as rep:

        def bad_card(req: dict[str, Any]) -> None:
            raise ValueError("card declined")

        async def bad_async(req: dict[str, Any]) -> None:
            await asyncio.sleep(0)
            raise KeyError("missing")

        rep.on("charge", bad_card)
        rep.on("lookup", bad_async)
        async with Requester("client", discovery=fast(port)) as req:
            await req.wait_connected(1, timeout=5)
            with pytest.raises(RemoteError) as info:
                await req.send({"type": "charge"}, timeout=5)
            assert info.value.message == "card declined"
            assert info.value.name == "ValueError"
            assert isinstance(info.value, CoterieError)
            with pytest.raises(RemoteError) as info:
                await req.send({"type": "lookup"}, timeout=5)
            assert info.value.name == "KeyError" and "missing" in info.value.message
            # The responder keeps serving after its handlers fail.
            rep.on("ok", lambda r: "fine")
            assert await req.send({"type": "ok"}, timeout=5) == "fine"


async def test_no_handler_is_a_clear_remote_error(port: int) -> None:
    # Without respondsTo (as a Node requester would see it) a request of an
    # unhandled type reaches the responder, which answers with an error.
    async with Responder("picky", discovery=fast(port), advertise_types=False) as rep:
        rep.on("known", lambda r: 1)
        assert "respondsTo" not in rep.advertisement
        async with Requester("client", discovery=fast(port)) as req:
            await req.wait_connected(1, timeout=5)
            with pytest.raises(RemoteError) as info:
                await req.send({"type": "unknown"}, timeout=5)
            assert info.value.name == "NoHandlerError"
            assert "picky" in info.value.message and "'unknown'" in info.value.message
            assert await req.send({"type": "known"}, timeout=5) == 1


async def test_unserved_type_waits_then_times_out(port: int) -> None:
    # With respondsTo advertised, a coterie requester never sends a type the
    # responder lacks: it waits for one that serves it, within its bound.
    async with Responder("picky", discovery=fast(port)) as rep:
        rep.on("known", lambda r: 1)
        async with Requester("client", discovery=fast(port)) as req:
            await req.wait_connected(1, timeout=5)
            with pytest.raises(RequestTimeoutError, match="no responder serves .unknown."):
                await req.send({"type": "unknown"}, timeout=0.2)
            assert rep.handled == 0
            # A handler registered later is advertised at once and the wait ends.
            task = asyncio.create_task(req.send({"type": "late"}, timeout=5))
            await wait_for(lambda: req.router.waiting == 1)
            rep.on("late", lambda r: "served")
            assert await task == "served"


async def test_bounded_wait_withdraws_the_request(port: int) -> None:
    async with Requester("lonely", discovery=fast(port)) as req:
        started = time.monotonic()
        with pytest.raises(RequestTimeoutError) as info:
            await req.send({"type": "work", "n": "withdrawn"}, timeout=0.3)
        elapsed = time.monotonic() - started
        assert isinstance(info.value, TimeoutError)
        assert 0.29 <= elapsed < 1.5
        assert req.router.waiting == 0 and req.router.inflight == 0

        seen: list[Any] = []
        async with Responder("late", discovery=fast(port)) as rep:
            rep.on("work", lambda r: seen.append(r["n"]) or r["n"])
            await req.wait_connected(1, timeout=5)
            assert await req.send({"type": "work", "n": "probe"}, timeout=5) == "probe"
            await asyncio.sleep(0.05)
        assert seen == ["probe"]  # the withdrawn request never reached it


async def test_waiting_request_completes_when_a_responder_starts(port: int) -> None:
    async with Requester("early", discovery=fast(port)) as req:
        task = asyncio.create_task(req.send({"type": "hi"}, timeout=5))
        await wait_for(lambda: req.router.waiting == 1)
        assert not task.done()
        async with Responder("late", discovery=fast(port)) as rep:
            rep.on("hi", lambda r: "hello")
            assert await asyncio.wait_for(task, 5) == "hello"


async def test_backlog_spreads_over_two_responders_started_together(port: int) -> None:
    by: Counter[str] = Counter()
    async with Requester("early", discovery=fast(port), backlog_settle=0.3) as req:
        tasks = [
            asyncio.create_task(req.send({"type": "w", "n": i}, timeout=10)) for i in range(10)
        ]
        await wait_for(lambda: req.router.waiting == 10)
        reps = [Responder(f"worker-{i}", discovery=fast(port)) for i in range(2)]
        for rep in reps:
            rep.on("w", lambda r, name=rep.name: by.update([name]) or r["n"])
        try:
            await asyncio.gather(*(r.start() for r in reps))
            results = await asyncio.wait_for(asyncio.gather(*tasks), 10)
        finally:
            await asyncio.gather(*(r.close() for r in reps))
    assert results == list(range(10))
    assert set(by) == {"worker-0", "worker-1"}, by
    assert min(by.values()) >= 4, by  # spread, not poured onto the first


async def test_cote_request_timeout_env(port: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COTE_REQUEST_TIMEOUT", "600")
    async with Requester("env-bound", discovery=fast(port)) as req:
        assert req.timeout == 0.6
        started = time.monotonic()
        with pytest.raises(RequestTimeoutError):
            await req.send({"type": "x"})
        assert 0.59 <= time.monotonic() - started < 2.5
        # cote's per-request __timeout (ms) wins over the default.
        started = time.monotonic()
        with pytest.raises(RequestTimeoutError):
            await req.send({"type": "x", "__timeout": 100})
        assert 0.09 <= time.monotonic() - started < 0.55
    assert Requester("explicit", timeout=3).timeout == 3
    monkeypatch.setenv("COTE_REQUEST_TIMEOUT", "soon")
    with pytest.raises(ValueError, match="COTE_REQUEST_TIMEOUT"):
        Requester("bad")
    monkeypatch.setenv("COTE_REQUEST_TIMEOUT", "-5")
    with pytest.raises(ValueError, match="COTE_REQUEST_TIMEOUT"):
        Requester("bad")


@pytest.mark.parametrize(
    ("field", "served", "other"),
    [
        ("namespace", "a", "b"),
        ("namespace", "a", None),
        ("namespace", "", None),
        ("key", "a", "b"),
        ("key", "a", None),
        ("environment", "prod", "dev"),
    ],
)
async def test_scope_isolation(port: int, field: str, served: str, other: str | None) -> None:
    async with Responder("scoped", discovery=fast(port), **{field: served}) as rep:
        rep.on("q", lambda r: "in scope")
        async with (
            Requester("inside", discovery=fast(port), **{field: served}) as inside,
            Requester("outside", discovery=fast(port), **{field: other}) as outside,
        ):
            await inside.wait_connected(1, timeout=5)
            assert await inside.send({"type": "q"}, timeout=5) == "in scope"
            # The outsider hears the responder's hellos but must not pair with it.
            assert outside.discovery is not None
            await wait_for(lambda: rep.id in outside.discovery.nodes)  # type: ignore[union-attr]
            assert outside.peers == [] and outside.connected == 0
            with pytest.raises(RequestTimeoutError):
                await outside.send({"type": "q"}, timeout=0.2)
        assert rep.handled == 1


async def test_frame_too_large(port: int) -> None:
    async with Responder("small", discovery=fast(port), max_frame_size=2048) as rep:
        rep.on("echo", lambda r: r["blob"])
        rep.on("big", lambda r: "y" * 5000)
        async with Requester("client", discovery=fast(port), max_frame_size=1024) as small:
            with pytest.raises(FrameTooLargeError, match="max_frame_size=1024") as info:
                await small.send({"type": "echo", "blob": "x" * 2000}, timeout=1)
            assert isinstance(info.value, ValueError)
            assert small.router.inflight == 0 and small.router.waiting == 0
        async with Requester("client", discovery=fast(port)) as req:
            await req.wait_connected(1, timeout=5)
            # A reply over the responder's limit becomes an error reply.
            with pytest.raises(RemoteError) as err:
                await req.send({"type": "big"}, timeout=5)
            assert err.value.name == "FrameTooLargeError"
            # A request over the responder's limit is dropped there: a timeout.
            with pytest.raises(RequestTimeoutError):
                await req.send({"type": "echo", "blob": "x" * 3000}, timeout=0.3)
            assert await req.send({"type": "echo", "blob": "ok"}, timeout=5) == "ok"


async def test_bad_requests_are_refused_locally(port: int) -> None:
    req = Requester("client", discovery=fast(port))
    with pytest.raises(RuntimeError, match="not running"):
        await req.send({"type": "x"})
    async with req:
        with pytest.raises(TypeError):
            await req.send(["not", "a", "dict"])  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="'type'"):
            await req.send({"no": "type"})
        with pytest.raises(TypeError):
            await req.send({"type": "x", "v": object()})
    with pytest.raises(ValueError):
        Requester("bad", timeout=0)


async def test_close_fails_waiting_requests(port: int) -> None:
    req = await Requester("closing", discovery=fast(port)).start()
    task = asyncio.create_task(req.send({"type": "x"}, timeout=5))
    await wait_for(lambda: req.router.waiting == 1)
    await req.close()
    with pytest.raises(RuntimeError, match="closed"):
        await asyncio.wait_for(task, 1)


RESPONDER_SCRIPT = """
import asyncio, sys
from coterie import DiscoveryOptions, Responder

async def main():
    async with Responder("first-contact", discovery=DiscoveryOptions(port=int(sys.argv[1]))) as r:
        r.on("ping", lambda req: "pong")
        print("ready", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)

asyncio.run(main())
"""

HELLO_ENV = ("COTE_HELLO_INTERVAL", "COTE_CHECK_INTERVAL", "COTE_NODE_TIMEOUT")


async def test_first_contact_is_fast_with_default_hello_timing(
    port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    for var in HELLO_ENV:
        monkeypatch.delenv(var, raising=False)
    env = {**os.environ, "COTE_BROADCAST_ADDRESS": "127.255.255.255"}
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        RESPONDER_SCRIPT,
        str(port),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        env=env,
    )
    try:
        assert child.stdout is not None and child.stdin is not None
        line = await asyncio.wait_for(child.stdout.readline(), 15)
        assert line.strip() == b"ready"
        # Default timing: hellos every 2 s. First contact must not wait for one.
        options = DiscoveryOptions(port=port)
        assert options.resolve().hello_interval == 2000
        started = time.monotonic()
        async with Requester("newcomer", discovery=options) as req:
            assert await req.send({"type": "ping"}, timeout=5) == "pong"
            elapsed = time.monotonic() - started
        print(f"\nfirst contact (start to first reply, other process): {elapsed * 1000:.1f} ms")
        assert elapsed < 1.0
    finally:
        if child.stdin is not None:
            child.stdin.close()
        try:
            await asyncio.wait_for(child.wait(), 5)
        except TimeoutError:
            child.kill()
            await child.wait()
    assert child.returncode == 0


async def test_node_events_reach_listeners(port: int) -> None:
    events: list[tuple[str, str]] = []
    removed = asyncio.Event()

    def record(event: str, node: Node) -> None:
        events.append((event, node.advertisement["name"]))
        if event == "removed":
            removed.set()

    async with Requester("watcher", discovery=fast(port)) as req:
        assert req.on_node(record) is record
        other = Responder("comer", discovery=fast(port))
        await other.start()
        await req.wait_connected(1, timeout=5)
        assert events == [("added", "comer")]
        await other.close()  # its goodbye removes it at once
        async with asyncio.timeout(5):
            await removed.wait()
        assert events == [("added", "comer"), ("removed", "comer")]
