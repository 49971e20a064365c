"""Requester and Responder over real sockets, in host scope.

Every test gets its own discovery port, so nodes of one test (or of another
test run on the same host) never meet nodes of another. Discovery timings are
short; waits are event driven and every wait has a bound.
"""

from __future__ import annotations

import asyncio
import json
import os
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
from coterie.testing import Mesh
from tests.helpers import HOST_SCOPE, MS, DiscoveryFactory, ms, wait_for

#: Bound for what should happen promptly: discovery, a link, a reply.
SOON = 5_000 * MS


async def test_sync_and_async_handlers(coterie_mesh: Mesh) -> None:
    async with coterie_mesh.responder("calc") as rep:
        rep.on("add", lambda req: req["a"] + req["b"])

        @rep.on("slow-echo")
        async def slow_echo(req: dict[str, Any]) -> dict[str, Any]:
            await asyncio.sleep(10 * MS)
            return {"echo": req["v"]}

        async with coterie_mesh.requester("client") as req:
            await req.wait_connected(1, timeout=SOON)
            assert await req.send({"type": "add", "a": 2, "b": 3}, timeout=SOON) == 5
            assert await req.send({"type": "slow-echo", "v": [1, "x"]}, timeout=SOON) == {
                "echo": [1, "x"]
            }
            results = await asyncio.gather(
                *(req.send({"type": "add", "a": i, "b": i}, timeout=SOON) for i in range(50))
            )
            assert results == [2 * i for i in range(50)]
        assert rep.handled == 52
        assert sorted(rep.types) == ["add", "slow-echo"]
        assert rep.advertisement["respondsTo"] == ["add", "slow-echo"]


async def test_remote_error_carries_message_and_name(coterie_mesh: Mesh) -> None:
    async with coterie_mesh.responder("failing") as rep:

        def bad_card(req: dict[str, Any]) -> None:
            raise ValueError("card declined")

        async def bad_async(req: dict[str, Any]) -> None:
            await asyncio.sleep(0)
            raise KeyError("missing")

        rep.on("charge", bad_card)
        rep.on("lookup", bad_async)
        async with coterie_mesh.requester("client") as req:
            await req.wait_connected(1, timeout=SOON)
            with pytest.raises(RemoteError) as info:
                await req.send({"type": "charge"}, timeout=SOON)
            assert info.value.message == "card declined"
            assert info.value.name == "ValueError"
            assert isinstance(info.value, CoterieError)
            with pytest.raises(RemoteError) as info:
                await req.send({"type": "lookup"}, timeout=SOON)
            assert info.value.name == "KeyError" and "missing" in info.value.message
            # The responder keeps serving after its handlers fail.
            rep.on("ok", lambda r: "fine")
            assert await req.send({"type": "ok"}, timeout=SOON) == "fine"


async def test_no_handler_is_a_clear_remote_error(coterie_mesh: Mesh) -> None:
    # Without respondsTo (as a Node requester would see it) a request of an
    # unhandled type reaches the responder, which answers with an error.
    async with coterie_mesh.responder("picky", advertise_types=False) as rep:
        rep.on("known", lambda r: 1)
        assert "respondsTo" not in rep.advertisement
        async with coterie_mesh.requester("client") as req:
            await req.wait_connected(1, timeout=SOON)
            with pytest.raises(RemoteError) as info:
                await req.send({"type": "unknown"}, timeout=SOON)
            assert info.value.name == "NoHandlerError"
            assert "picky" in info.value.message and "'unknown'" in info.value.message
            assert await req.send({"type": "known"}, timeout=SOON) == 1


async def test_unserved_type_waits_then_times_out(coterie_mesh: Mesh) -> None:
    # With respondsTo advertised, a coterie requester never sends a type the
    # responder lacks: it waits for one that serves it, within its bound.
    async with coterie_mesh.responder("picky") as rep:
        rep.on("known", lambda r: 1)
        async with coterie_mesh.requester("client") as req:
            await req.wait_connected(1, timeout=SOON)
            with pytest.raises(RequestTimeoutError, match=r"no responder serves .unknown."):
                await req.send({"type": "unknown"}, timeout=200 * MS)
            assert rep.handled == 0
            # A handler registered later is advertised at once and the wait ends.
            task = asyncio.create_task(req.send({"type": "late"}, timeout=SOON))
            await wait_for(lambda: req.stats().waiting == 1)
            rep.on("late", lambda r: "served")
            assert await task == "served"


async def test_pattern_handlers_serve_as_eventemitter2_patterns(coterie_mesh: Mesh) -> None:
    # cote's responder.on('*') / on('orders::*') / on('**'); the exact type wins.
    async with coterie_mesh.responder("wild") as rep:
        rep.on("orders::new", lambda r: "exact")
        rep.on("**", lambda r: f"all {r['type']}")
        rep.on("orders::*", lambda r: f"family {r['type']}")
        rep.on("*", lambda r: f"one {r['type']}")
        assert rep.advertisement["respondsTo"] == ["orders::new", "**", "orders::*", "*"]
        async with coterie_mesh.requester("client") as req:
            await req.wait_connected(1, timeout=SOON)

            async def ask(kind: str) -> Any:
                return await req.send({"type": kind}, timeout=SOON)

            assert await ask("orders::new") == "exact"
            assert await ask("orders::paid") == "family orders::paid"
            assert await ask("validate") == "one validate"
            assert await ask("a::b::c") == "all a::b::c"
        assert rep.handler("orders::x") is rep.handler("orders::y")
        assert rep.handler(5) is None


async def test_a_requester_routes_by_advertised_patterns(coterie_mesh: Mesh) -> None:
    async with coterie_mesh.responder("family") as rep:
        rep.on("orders::*", lambda r: r["type"])
        async with coterie_mesh.requester("client") as req:
            await req.wait_connected(1, timeout=SOON)
            assert await req.send({"type": "orders::paid"}, timeout=SOON) == "orders::paid"
            # Outside the family it is never sent: the wait says why.
            with pytest.raises(RequestTimeoutError, match=r"no responder serves 'billing'"):
                await req.send({"type": "billing"}, timeout=200 * MS)
        assert rep.handled == 1


async def test_bounded_wait_withdraws_the_request(disc: DiscoveryFactory) -> None:
    async with Requester("lonely", discovery=disc()) as req:
        started = time.monotonic()
        with pytest.raises(RequestTimeoutError) as info:
            await req.send({"type": "work", "n": "withdrawn"}, timeout=300 * MS)
        elapsed = time.monotonic() - started
        assert isinstance(info.value, TimeoutError)
        assert 290 * MS <= elapsed < 1_500 * MS
        assert req.stats().waiting == 0 and req.stats().in_flight == 0

        seen: list[Any] = []
        async with Responder("late", discovery=disc()) as rep:
            rep.on("work", lambda r: seen.append(r["n"]) or r["n"])
            await req.wait_connected(1, timeout=SOON)
            assert await req.send({"type": "work", "n": "probe"}, timeout=SOON) == "probe"
            await asyncio.sleep(50 * MS)
        assert seen == ["probe"]  # the withdrawn request never reached it


async def test_waiting_request_completes_when_a_responder_starts(disc: DiscoveryFactory) -> None:
    async with Requester("early", discovery=disc()) as req:
        task = asyncio.create_task(req.send({"type": "hi"}, timeout=SOON))
        await wait_for(lambda: req.stats().waiting == 1)
        assert not task.done()
        async with Responder("late", discovery=disc()) as rep:
            rep.on("hi", lambda r: "hello")
            assert await asyncio.wait_for(task, SOON) == "hello"


async def test_backlog_spreads_over_two_responders_started_together(disc: DiscoveryFactory) -> None:
    by: Counter[str] = Counter()
    async with Requester("early", discovery=disc(), backlog_settle=300 * MS) as req:
        tasks = [
            asyncio.create_task(req.send({"type": "w", "n": i}, timeout=2 * SOON))
            for i in range(10)
        ]
        await wait_for(lambda: req.stats().waiting == 10)
        reps = [Responder(f"worker-{i}", discovery=disc()) for i in range(2)]
        for rep in reps:
            rep.on("w", lambda r, name=rep.name: by.update([name]) or r["n"])
        try:
            await asyncio.gather(*(r.start() for r in reps))
            results = await asyncio.wait_for(asyncio.gather(*tasks), 2 * SOON)
        finally:
            await asyncio.gather(*(r.close() for r in reps))
    assert results == list(range(10))
    assert set(by) == {"worker-0", "worker-1"}, by
    assert min(by.values()) >= 4, by  # spread, not poured onto the first


async def test_cote_request_timeout_env(
    disc: DiscoveryFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    default_ms, per_request_ms = ms(600), ms(100)
    monkeypatch.setenv("COTE_REQUEST_TIMEOUT", str(default_ms))
    async with Requester("env-bound", discovery=disc()) as req:
        assert req.timeout == default_ms / 1000
        started = time.monotonic()
        with pytest.raises(RequestTimeoutError):
            await req.send({"type": "x"})
        elapsed = time.monotonic() - started
        assert default_ms / 1000 - 10 * MS <= elapsed < default_ms / 1000 + 1_500 * MS
        # cote's per-request __timeout (ms) wins over the default.
        started = time.monotonic()
        with pytest.raises(RequestTimeoutError):
            await req.send({"type": "x", "__timeout": per_request_ms})
        elapsed = time.monotonic() - started
        assert per_request_ms / 1000 - 10 * MS <= elapsed < default_ms / 1000 - 50 * MS
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
async def test_scope_isolation(
    disc: DiscoveryFactory, field: str, served: str, other: str | None
) -> None:
    inner: dict[str, Any] = {field: served}
    outer: dict[str, Any] = {field: other}
    async with Responder("scoped", discovery=disc(), **inner) as rep:
        rep.on("q", lambda r: "in scope")
        async with (
            Requester("inside", discovery=disc(), **inner) as inside,
            Requester("outside", discovery=disc(), **outer) as outside,
        ):
            await inside.wait_connected(1, timeout=SOON)
            assert await inside.send({"type": "q"}, timeout=SOON) == "in scope"
            # The outsider hears the responder's hellos but must not pair with it.
            assert outside.discovery is not None
            heard = asyncio.Event()
            outside.discovery.on(lambda event, node: heard.set() if node.id == rep.id else None)
            if rep.id not in outside.discovery.nodes:
                async with asyncio.timeout(SOON):
                    await heard.wait()
            assert outside.peers == [] and outside.connected == 0
            with pytest.raises(RequestTimeoutError):
                await outside.send({"type": "q"}, timeout=200 * MS)
        assert rep.handled == 1


async def test_frame_too_large(disc: DiscoveryFactory) -> None:
    async with Responder("small", discovery=disc(), max_frame_size=2048) as rep:
        rep.on("echo", lambda r: r["blob"])
        rep.on("big", lambda r: "y" * 5000)
        async with Requester("client", discovery=disc(), max_frame_size=1024) as small:
            with pytest.raises(FrameTooLargeError, match="max_frame_size=1024") as info:
                await small.send({"type": "echo", "blob": "x" * 2000}, timeout=1_000 * MS)
            assert isinstance(info.value, ValueError)
            assert small.stats().in_flight == 0 and small.stats().waiting == 0
        async with Requester("client", discovery=disc()) as req:
            await req.wait_connected(1, timeout=SOON)
            # A reply over the responder's limit becomes an error reply.
            with pytest.raises(RemoteError) as err:
                await req.send({"type": "big"}, timeout=SOON)
            assert err.value.name == "FrameTooLargeError"
            # A request over the responder's limit is dropped there: a timeout.
            with pytest.raises(RequestTimeoutError):
                await req.send({"type": "echo", "blob": "x" * 3000}, timeout=300 * MS)
            assert await req.send({"type": "echo", "blob": "ok"}, timeout=SOON) == "ok"


async def test_bad_requests_are_refused_locally(disc: DiscoveryFactory) -> None:
    req = Requester("client", discovery=disc())
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


async def test_close_fails_waiting_requests(disc: DiscoveryFactory) -> None:
    req = await Requester("closing", discovery=disc()).start()
    task = asyncio.create_task(req.send({"type": "x"}, timeout=SOON))
    await wait_for(lambda: req.stats().waiting == 1)
    await req.close()
    with pytest.raises(RuntimeError, match="closed"):
        await asyncio.wait_for(task, 1_000 * MS)


RESPONDER_SCRIPT = """
import asyncio, json, sys
from coterie import DiscoveryOptions, Responder

async def main():
    # One hello at start, then one a minute: only fast contact introduces it in time.
    options = DiscoveryOptions(port=int(sys.argv[1]), hello_interval=60_000,
                               check_interval=60_000, node_timeout=120_000, master_timeout=120_000)
    async with Responder("first-contact", discovery=options) as r:
        r.on("ping", lambda req: "pong")
        loop = asyncio.get_running_loop()
        while True:
            print(json.dumps({"hellos": r.discovery.hellos_sent}), flush=True)
            if not await loop.run_in_executor(None, sys.stdin.readline):
                break

asyncio.run(main())
"""

HELLO_ENV = ("COTE_HELLO_INTERVAL", "COTE_CHECK_INTERVAL", "COTE_NODE_TIMEOUT")


async def test_first_contact_does_not_wait_for_a_periodic_hello(
    disc_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The responder runs in another process and said its hellos before the
    # newcomer listened; the next is a minute away. The newcomer, with cote's
    # default timing, must reach it anyway: a new node's hello gets an answer.
    for var in HELLO_ENV:
        monkeypatch.delenv(var, raising=False)
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        RESPONDER_SCRIPT,
        str(disc_port),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "COTE_BROADCAST_ADDRESS": HOST_SCOPE},
    )
    try:
        assert child.stdout is not None and child.stdin is not None
        async with asyncio.timeout(15_000 * MS):
            before = json.loads(await child.stdout.readline())["hellos"]
        newcomer = DiscoveryOptions(port=disc_port, broadcast=HOST_SCOPE)
        assert newcomer.resolve().hello_interval == 2000  # cote's default
        async with Requester("newcomer", discovery=newcomer) as req:
            started = time.monotonic()
            assert await req.send({"type": "ping"}, timeout=SOON) == "pong"
            elapsed = time.monotonic() - started
        print(f"\nfirst contact (send to first reply, other process): {elapsed * 1000:.1f} ms")
        child.stdin.write(b"hellos?\n")
        async with asyncio.timeout(SOON):
            after = json.loads(await child.stdout.readline())["hellos"]
        # Exactly one hello since it was ready: its answer to the newcomer.
        assert after - before == 1
    finally:
        if child.stdin is not None:
            child.stdin.close()
        try:
            await asyncio.wait_for(child.wait(), SOON)
        except TimeoutError:
            child.kill()
            await child.wait()
    assert child.returncode == 0


async def test_node_events_reach_listeners(disc: DiscoveryFactory) -> None:
    events: list[tuple[str, str]] = []
    removed = asyncio.Event()

    def record(event: str, node: Node) -> None:
        events.append((event, node.advertisement["name"]))
        if event == "removed":
            removed.set()

    async with Requester("watcher", discovery=disc()) as req:
        assert req.on_node(record) is record
        other = Responder("comer", discovery=disc())
        await other.start()
        await req.wait_connected(1, timeout=SOON)
        assert events == [("added", "comer")]
        await other.close()  # its goodbye removes it at once
        async with asyncio.timeout(SOON):
            await removed.wait()
        assert events == [("added", "comer"), ("removed", "comer")]


async def test_a_requester_and_a_responder_can_be_subclassed_in_python(
    coterie_mesh: Mesh,
) -> None:
    # Both are compiled in the mypyc build: they must stay open to subclasses
    # written in Python, whose overrides run (the sockend gateway has one).
    class Counting(Responder):
        def __init__(self, name: str | None = None, **kwargs: Any) -> None:
            super().__init__(name, **kwargs)
            self.registered: list[str] = []

        def on(self, request_type: str, handler: Any = None) -> Any:
            self.registered.append(request_type)
            return super().on(request_type, handler)

    class Tagging(Requester):
        async def send(self, request: dict[str, Any], **kwargs: Any) -> Any:
            return {"tagged": await super().send(request, **kwargs)}

    async with (
        coterie_mesh.add(Counting, "counting") as rep,
        coterie_mesh.add(Tagging, "tagging", timeout=SOON) as req,
    ):
        rep.on("echo", lambda request: request["v"])
        assert rep.registered == ["echo"]
        assert await req.send({"type": "echo", "v": 7}) == {"tagged": 7}
