"""Sockend over real sockets: socket.io clients, a Sockend, coterie responders and publishers.

Each test gets its own discovery port and short intervals in host scope; the
socket.io server listens on 127.0.0.1 on a free port. Waits are event driven
(``wait_ready``, acknowledgements, queues of received events), each with a
timeout. Absence of a relayed event is checked by ordering: the relay emits
in arrival order, so a marker published afterwards must arrive first.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest

socketio = pytest.importorskip("socketio")

from aiohttp import web  # noqa: E402

from coterie import Publisher, Responder  # noqa: E402
from coterie.gateways.sockend import Sockend, socketio_app  # noqa: E402
from tests.helpers import MS  # noqa: E402
from tests.helpers import DiscoveryFactory as Disc  # noqa: E402

#: Bound for what should happen promptly: discovery, a connection, an answer.
SOON = 5_000 * MS


async def serve_app(app: web.Application, host: str, port: int) -> tuple[web.AppRunner, int]:
    """Serve ``app`` on ``host:port`` (0: a free port); returns the runner and the port."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner, int(runner.addresses[0][1])


@asynccontextmanager
async def gateway(disc: Disc, **kwargs: Any) -> AsyncIterator[tuple[Sockend, str]]:
    """A started Sockend served over HTTP; yields it and its URL."""
    sockend = Sockend(discovery=disc(), **kwargs)
    async with sockend:
        runner, port = await serve_app(socketio_app(sockend.io), "127.0.0.1", 0)
        try:
            yield sockend, f"http://127.0.0.1:{port}"
        finally:
            await runner.cleanup()


@asynccontextmanager
async def client(
    url: str, namespaces: list[str] | None = None, **kwargs: Any
) -> AsyncIterator[Any]:
    sio = socketio.AsyncClient(reconnection=False)
    await sio.connect(
        url, namespaces=namespaces or ["/"], transports=["websocket"], wait_timeout=SOON, **kwargs
    )
    try:
        yield sio
    finally:
        await sio.disconnect()


_MISSING: Any = object()


async def call(sio: Any, event: str, data: Any = _MISSING, namespace: str = "/") -> tuple[Any, ...]:
    """Emit with an acknowledgement; the ack's arguments as a tuple."""
    args = None if data is _MISSING else (data,)  # a 1-tuple sends exactly one argument
    answer = await sio.call(event, args, namespace=namespace, timeout=SOON)
    return answer if isinstance(answer, tuple) else (answer,)


class Inbox:
    """Collects socket.io events; ``get`` waits with a timeout."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()

    def handler(self, event: str) -> Callable[..., Awaitable[None]]:
        async def on_event(*args: Any) -> None:
            self.queue.put_nowait((event, args[0] if args else None))

        return on_event

    async def get(self, timeout: float = SOON) -> tuple[str, Any]:
        async with asyncio.timeout(timeout):
            return await self.queue.get()


def adder(disc: Disc, **kwargs: Any) -> Responder:
    responder = Responder("adder", host="127.0.0.1", discovery=disc(), **kwargs)
    responder.on("add", lambda req: req["a"] + req["b"])
    return responder


def echo(disc: Disc, **kwargs: Any) -> Responder:
    responder = Responder("echo", host="127.0.0.1", discovery=disc(), **kwargs)
    responder.on("echo", lambda req: req)
    return responder


def error_code(ack: tuple[Any, ...]) -> str:
    assert len(ack) == 1, f"expected an error ack, got {ack!r}"
    error = ack[0]
    assert isinstance(error, dict) and error.get("name") == "SockendError", error
    assert isinstance(error.get("message"), str) and error["message"]
    return str(error["code"])


# -- requests -------------------------------------------------------------------


async def test_emit_with_ack_reaches_responder(disc: Disc) -> None:
    responder = adder(disc)

    @responder.on("fail")
    def fail(req: dict[str, Any]) -> None:
        raise ValueError("no way")

    async with responder, gateway(disc) as (sockend, url):
        await sockend.wait_ready(None, timeout=SOON)
        assert sockend.advertisement["axon_type"] == "sockend"
        async with client(url) as sio:
            assert await call(sio, "add", {"a": 2, "b": 40}) == (None, 42)
            assert await call(sio, "add", {"a": "x", "b": "y"}) == (None, "xy")
            # The responder's error travels as it arrived (cote's behaviour).
            (error,) = await call(sio, "fail", {})
            assert error == {"message": "no way", "name": "ValueError"}
        assert sockend.exposed() == ["add", "fail"]
        assert sockend.forwarded == 3


async def test_namespaces_map_to_socketio_namespaces(disc: Disc) -> None:
    math = adder(disc, namespace="math")
    square = Responder("square", host="127.0.0.1", discovery=disc(), namespace="math")
    square.on("square", lambda req: req["x"] * req["x"])
    async with math, square, echo(disc), gateway(disc) as (sockend, url):
        await sockend.wait_ready("math", timeout=SOON)
        await sockend.wait_ready(None, timeout=SOON)
        # Both math responders' types are exposed (cote exposes only the first's).
        await sockend.wait_exposed(["add", "square"], "math", timeout=SOON)
        assert sockend.exposed("math") == ["add", "square"]
        async with client(url, namespaces=["/", "/math"]) as sio:
            assert await call(sio, "add", {"a": 1, "b": 2}, namespace="/math") == (None, 3)
            assert await call(sio, "square", {"x": 7}, namespace="/math") == (None, 49)
            assert await call(sio, "echo", {"v": 1}, namespace="/") == (
                None,
                {"v": 1, "type": "echo"},
            )
            # A type is served only on its responder's namespace.
            assert error_code(await call(sio, "add", {"a": 1, "b": 2}, namespace="/")) == (
                "no_handler"
            )
            assert error_code(await call(sio, "echo", {}, namespace="/math")) == "no_handler"


async def test_client_cannot_set_subset_or_timeout(disc: Disc) -> None:
    async with echo(disc), gateway(disc) as (sockend, url):
        await sockend.wait_ready(None, timeout=SOON)
        async with client(url) as sio:
            ack = await call(
                sio, "echo", {"__subset": "nobody", "__timeout": 1, "type": "other", "k": "v"}
            )
            # With __subset kept, no responder would match and the request would time out.
            assert ack == (None, {"type": "echo", "k": "v"})


async def test_transformers_run_after_stripping_and_may_refuse(disc: Disc) -> None:
    async with echo(disc), gateway(disc) as (sockend, url):
        seen: list[str] = []

        @sockend.add_transformer
        async def add_user(request: dict[str, Any], sid: str, namespace: str) -> None:
            if request.get("k") == "forbidden":
                raise PermissionError("not for you")
            assert "__timeout" not in request
            seen.append(namespace)
            request["user"] = f"sid:{sid}"

        await sockend.wait_ready(None, timeout=SOON)
        async with client(url) as sio:
            ack = await call(sio, "echo", {"k": "v", "__timeout": 5})
            assert ack == (None, {"k": "v", "user": f"sid:{sio.get_sid('/')}", "type": "echo"})
            error = await call(sio, "echo", {"k": "forbidden"})
            assert error_code(error) == "rejected"
            assert error[0]["message"] == "not for you"
        assert seen == ["/"]


async def test_bad_payloads_and_no_ack_emits_do_not_crash(disc: Disc) -> None:
    async with echo(disc) as responder, gateway(disc, max_payload=1000) as (sockend, url):
        noted: asyncio.Queue[Any] = asyncio.Queue()
        responder.on("note", lambda req: noted.put_nowait(req))
        await sockend.wait_ready(None, timeout=SOON)
        await sockend.wait_exposed(["echo", "note"], timeout=SOON)
        async with client(url) as sio:
            assert error_code(await call(sio, "echo", None)) == "bad_request"
            assert error_code(await call(sio, "echo", [1, 2])) == "bad_request"
            assert error_code(await call(sio, "echo", "text")) == "bad_request"
            assert error_code(await call(sio, "echo", 5)) == "bad_request"
            assert error_code(await call(sio, "echo", {"blob": "x" * 2000})) == "too_large"
            # No payload at all is an empty object, as in cote.
            assert await call(sio, "echo") == (None, {"type": "echo"})
            # Emits without an acknowledgement: bad ones are dropped, good ones forwarded.
            await sio.emit("echo", (None,))
            await sio.emit("echo", "text")
            await sio.emit("nope", {"x": 1})
            await sio.emit("note", {"n": 1, "__subset": "x"})
            async with asyncio.timeout(SOON):
                assert await noted.get() == {"n": 1, "type": "note"}
            # The gateway and the connection still work.
            assert await call(sio, "echo", {"after": True}) == (
                None,
                {"after": True, "type": "echo"},
            )
        assert sockend.refused >= 7


async def test_event_not_advertised_gets_an_error(disc: Disc) -> None:
    hidden = Responder("hidden", host="127.0.0.1", discovery=disc(), advertise_types=False)
    hidden.on("hidden", lambda req: "should not be reachable")
    other_key = Responder("other", host="127.0.0.1", discovery=disc(), key="other")
    other_key.on("other", lambda req: "should not be reachable")
    async with echo(disc), hidden, other_key, gateway(disc) as (sockend, url):
        await sockend.wait_ready(None, timeout=SOON)
        async with client(url) as sio:
            assert error_code(await call(sio, "nope", {})) == "no_handler"
            # Only responders with the Sockend's key are exposed.
            assert error_code(await call(sio, "other", {})) == "no_handler"
            # A responder without respondsTo is not exposed (as in cote).
            assert error_code(await call(sio, "hidden", {})) == "no_handler"
            assert await call(sio, "echo", {}) == (None, {"type": "echo"})
        assert sockend.exposed() == ["echo"]


async def test_forwarded_request_is_bounded_in_time(disc: Disc) -> None:
    slow = Responder("slow", host="127.0.0.1", discovery=disc(), close_timeout=100 * MS)

    @slow.on("slow")
    async def wait(req: dict[str, Any]) -> str:
        await asyncio.sleep(2_000 * MS)
        return "late"

    async with slow, gateway(disc, request_timeout=300 * MS) as (sockend, url):
        await sockend.wait_ready(None, timeout=SOON)
        async with client(url) as sio:
            loop = asyncio.get_running_loop()
            started = loop.time()
            # The client's own __timeout cannot extend the bound.
            error = await call(sio, "slow", {"__timeout": 60_000})
            elapsed = loop.time() - started
            assert error_code(error) == "timeout"
            assert 250 * MS <= elapsed < 1_500 * MS


# -- publishes ------------------------------------------------------------------


async def test_publishes_are_relayed_by_namespace_and_room(disc: Disc) -> None:
    news = Publisher("news", host="127.0.0.1", broadcasts=["news"], discovery=disc())
    feed = Publisher(
        "feed", host="127.0.0.1", broadcasts=["tick"], namespace="feed", discovery=disc()
    )
    async with news, feed, gateway(disc) as (sockend, url):

        @sockend.io.on("connect")
        async def join(sid: str, environ: Any, auth: Any = None) -> None:
            if isinstance(auth, dict) and isinstance(auth.get("room"), str):
                await sockend.io.enter_room(sid, auth["room"])

        await sockend.wait_ready(None, timeout=SOON)
        await sockend.wait_ready("feed", timeout=SOON)
        await news.wait_subscribers(1, timeout=SOON)
        await feed.wait_subscribers(1, timeout=SOON)
        assert sockend.relays() == ["news"] and sockend.relays("feed") == ["tick"]
        inbox_a, inbox_b = Inbox(), Inbox()
        async with (
            client(url, namespaces=["/", "/feed"], auth={"room": "r1"}) as a,
            client(url, namespaces=["/"]) as b,
        ):
            for sio, inbox in ((a, inbox_a), (b, inbox_b)):
                for event in ("news", "secret", "tick"):
                    sio.on(event, inbox.handler(event), namespace="/")
                sio.on("tick", inbox.handler("feed:tick"), namespace="/feed")

            await news.publish("secret", {"hidden": True})  # not advertised: not relayed
            await news.publish("news", {"__room": "r1", "only": "r1"})
            await news.publish("news", {"__rooms": ["r2", "r3"], "only": "elsewhere"})
            await feed.publish("tick", 1)
            await news.publish("news", {"all": True})

            got_a = [await inbox_a.get() for _ in range(3)]
            # One publisher's events keep their order; two publishers' may interleave.
            assert [e for e in got_a if e[0] == "news"] == [
                ("news", {"only": "r1"}),
                ("news", {"all": True}),
            ]
            assert ("feed:tick", 1) in got_a
            # Everything above was emitted before this marker, on the same connections.
            await news.publish("news", {"end": True})
            assert await inbox_a.get() == ("news", {"end": True})
            assert await inbox_b.get() == ("news", {"all": True})
            assert await inbox_b.get() == ("news", {"end": True})
            assert inbox_a.queue.empty() and inbox_b.queue.empty()
        assert sockend.relayed == 5  # the one for r2/r3 reached nobody but was emitted


async def test_sockend_module_is_optional_for_import_coterie() -> None:
    import subprocess
    import sys

    code = (
        "import sys, builtins\n"
        "real = builtins.__import__\n"
        "def guard(name, *a, **k):\n"
        "    if name.split('.')[0] in ('socketio', 'engineio'):\n"
        "        raise ImportError('blocked ' + name)\n"
        "    return real(name, *a, **k)\n"
        "builtins.__import__ = guard\n"
        "import coterie, coterie.gateways\n"
        "assert 'socketio' not in sys.modules\n"
        "try:\n"
        "    import coterie.gateways.sockend\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", code, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    async with asyncio.timeout(20_000 * MS):
        out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    assert "pip install 'coterie[sockend]'" in out.decode()


async def test_link_secret_is_passed_to_the_gateways_requesters(disc: Disc) -> None:
    import inspect

    from coterie.components.base import Component

    if "secret" not in inspect.signature(Component.__init__).parameters:
        pytest.skip("this core has no link secrets")
    locked = Responder("locked", host="127.0.0.1", discovery=disc(), secret="s3cret")
    locked.on("locked", lambda req: "opened")
    async with locked, echo(disc), gateway(disc, secret="s3cret") as (sockend, url):
        await sockend.wait_ready(None, timeout=SOON)
        async with client(url) as sio:
            assert await call(sio, "locked", {}) == (None, "opened")
            # A responder without the secret would refuse the handshake: not exposed.
            assert error_code(await call(sio, "echo", {})) == "no_handler"
        assert sockend.exposed() == ["locked"]
