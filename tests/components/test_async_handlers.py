"""``async def`` handlers run eagerly: stepped at once, a task only when they wait.

What is pinned here is what a handler and its caller can observe: a handler
that never waits runs in arrival order with plain handlers and is never a
request "in progress"; one that waits goes on as a task in the context it
started in; exceptions, cancellation and a failed future reach the handler
and the caller as they would in a task.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import AsyncIterator
from typing import Any

import pytest

from coterie import RemoteError, Requester, Responder
from coterie.protocol.framing import FrameDecoder
from coterie.protocol.messages import encode_request
from tests.helpers import MS, DiscoveryFactory

#: Bound for what should happen promptly: discovery, a link, a reply.
SOON = 5_000 * MS

VAR: contextvars.ContextVar[str] = contextvars.ContextVar("VAR", default="unset")


@pytest.fixture
async def pair(disc: DiscoveryFactory) -> AsyncIterator[tuple[Responder, Requester]]:
    async with (
        Responder("eager", discovery=disc(), close_timeout=50 * MS) as rep,
        Requester("caller", discovery=disc()) as req,
    ):
        yield rep, req


async def connected(req: Requester) -> Requester:
    await req.wait_connected(1, timeout=SOON)
    return req


async def test_handlers_that_do_not_wait_run_in_arrival_order(disc: DiscoveryFactory) -> None:
    """Requests that arrive together: async and plain handlers run, and reply, in turn.

    A task per async handler would run it after every plain handler of the
    same read (and reply after them).
    """
    ran: list[str] = []
    async with Responder("eager", discovery=disc()) as rep:

        @rep.on("async")
        async def a(req: dict[str, Any]) -> str:
            ran.append(f"async {req['n']}")
            return f"async {req['n']}"

        @rep.on("plain")
        def p(req: dict[str, Any]) -> str:
            ran.append(f"plain {req['n']}")
            return f"plain {req['n']}"

        reader, writer = await asyncio.open_connection("127.0.0.1", rep.port)
        try:
            kinds = ["async", "plain", "async", "async", "plain"]
            writer.write(
                b"".join(
                    encode_request({"type": kind, "n": i}, f"id{i}") for i, kind in enumerate(kinds)
                )
            )
            decoder = FrameDecoder()
            replies: list[Any] = []
            async with asyncio.timeout(SOON):
                while len(replies) < len(kinds):
                    replies.extend(decoder.feed(await reader.read(65536)))
        finally:
            writer.close()
        expected = [f"{kind} {i}" for i, kind in enumerate(kinds)]
        assert ran == expected
        assert [(r[1], r[2]) for r in replies] == [(e, f"id{i}") for i, e in enumerate(expected)]
        assert all(r[0] is None for r in replies)


async def test_a_handler_that_does_not_wait_is_never_in_progress(
    pair: tuple[Responder, Requester],
) -> None:
    rep, req = pair
    seen: list[int] = []

    @rep.on("now")
    async def now(r: dict[str, Any]) -> int:
        seen.append(rep.in_progress)
        return int(r["n"]) * 2

    await connected(req)
    results = await asyncio.gather(
        *(req.send({"type": "now", "n": i}, timeout=SOON) for i in range(50))
    )
    assert results == [2 * i for i in range(50)]
    assert seen == [0] * 50
    assert rep.in_progress == 0


async def test_a_waiting_handler_goes_on_in_its_own_context(
    pair: tuple[Responder, Requester],
) -> None:
    rep, req = pair
    release, entered = asyncio.Event(), asyncio.Event()
    inside: dict[str, Any] = {}

    @rep.on("wait")
    async def wait(r: dict[str, Any]) -> str:
        VAR.set(r["v"])  # set before the first wait, read after it
        entered.set()
        await release.wait()
        inside["task"] = asyncio.current_task()
        async with asyncio.timeout(SOON):  # needs the task it now runs in
            await asyncio.sleep(0)
        return VAR.get()

    @rep.on("peek")
    async def peek(r: dict[str, Any]) -> str:
        return VAR.get()

    await connected(req)
    first = asyncio.ensure_future(req.send({"type": "wait", "v": "mine"}, timeout=SOON))
    await asyncio.wait_for(entered.wait(), SOON)
    assert rep.in_progress == 1
    # A request handled meanwhile sees none of the waiting handler's context.
    assert await req.send({"type": "peek"}, timeout=SOON) == "unset"
    assert VAR.get() == "unset"
    release.set()
    assert await first == "mine"
    assert isinstance(inside["task"], asyncio.Task)
    assert rep.in_progress == 0


async def test_context_changes_do_not_leak_between_requests(
    pair: tuple[Responder, Requester],
) -> None:
    rep, req = pair

    @rep.on("swap")
    async def swap(r: dict[str, Any]) -> str:
        before = VAR.get()
        VAR.set(r["v"])
        return before

    await connected(req)
    for v in ("a", "b", "c"):
        assert await req.send({"type": "swap", "v": v}, timeout=SOON) == "unset"
    results = await asyncio.gather(
        *(req.send({"type": "swap", "v": str(i)}, timeout=SOON) for i in range(20))
    )
    assert results == ["unset"] * 20


async def test_exceptions_before_and_after_a_wait(pair: tuple[Responder, Requester]) -> None:
    rep, req = pair

    @rep.on("early")
    async def early(r: dict[str, Any]) -> None:
        raise KeyError("early")

    @rep.on("late")
    async def late(r: dict[str, Any]) -> None:
        await asyncio.sleep(0)
        raise ValueError("late")

    @rep.on("remote")
    async def remote(r: dict[str, Any]) -> None:
        await asyncio.sleep(MS)
        raise RemoteError("declined")

    @rep.on("caught")
    async def caught(r: dict[str, Any]) -> str:
        failing = asyncio.get_running_loop().create_future()
        asyncio.get_running_loop().call_soon(failing.set_exception, OSError("disk"))
        try:
            await failing  # the failure is thrown into the handler where it waits
        except OSError as exc:
            return f"handled {exc}"
        return "not thrown"

    await connected(req)
    with pytest.raises(RemoteError) as info:
        await req.send({"type": "early"}, timeout=SOON)
    assert (info.value.name, info.value.message) == ("KeyError", "'early'")
    with pytest.raises(RemoteError) as info:
        await req.send({"type": "late"}, timeout=SOON)
    assert (info.value.name, info.value.message) == ("ValueError", "late")
    with pytest.raises(RemoteError) as info:
        await req.send({"type": "remote"}, timeout=SOON)
    assert info.value.payload == "declined"
    assert await req.send({"type": "caught"}, timeout=SOON) == "handled disk"
    assert rep.in_progress == 0


async def test_a_handler_that_yields_once_is_answered(pair: tuple[Responder, Requester]) -> None:
    rep, req = pair

    @rep.on("yield")
    async def yield_once(r: dict[str, Any]) -> list[int]:
        await asyncio.sleep(0)  # a bare yield, no future
        await asyncio.sleep(0)
        return [r["n"], r["n"]]

    @rep.on("future")
    def future(r: dict[str, Any]) -> asyncio.Future[str]:  # an awaitable, not a coroutine
        done = asyncio.get_running_loop().create_future()
        done.set_result("from a future")
        return done

    await connected(req)
    assert await req.send({"type": "yield", "n": 3}, timeout=SOON) == [3, 3]
    assert await req.send({"type": "future"}, timeout=SOON) == "from a future"


async def test_cancellation_reaches_a_waiting_handler(pair: tuple[Responder, Requester]) -> None:
    rep, req = pair
    cleaned: list[str] = []
    entered: list[asyncio.Event] = [asyncio.Event(), asyncio.Event()]

    @rep.on("forever")
    async def forever(r: dict[str, Any]) -> None:
        entered[0].set()
        try:
            await asyncio.Event().wait()
        finally:
            cleaned.append("finally")

    @rep.on("spin")
    async def spin(r: dict[str, Any]) -> None:
        entered[1].set()
        try:
            while True:  # noqa: ASYNC110 - bare yields: the cancellation is thrown in, no future
                await asyncio.sleep(0)
        finally:
            cleaned.append("spin finally")

    @rep.on("self-cancel")
    async def self_cancel(r: dict[str, Any]) -> None:
        raise asyncio.CancelledError  # before any wait

    await connected(req)
    with pytest.raises(RemoteError) as info:
        await req.send({"type": "self-cancel"}, timeout=SOON)
    assert info.value.name == "CancelledError"
    pending = [
        asyncio.ensure_future(req.send({"type": kind}, timeout=SOON))
        for kind in ("forever", "spin")
    ]
    await asyncio.wait_for(asyncio.gather(*(e.wait() for e in entered)), SOON)
    assert rep.in_progress == 2
    await rep.close()  # close_timeout is short: the handlers are cancelled where they wait
    assert sorted(cleaned) == ["finally", "spin finally"]
    for reply in pending:
        with pytest.raises(RemoteError) as info:
            await reply
        assert info.value.name == "CancelledError"
