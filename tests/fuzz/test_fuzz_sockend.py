"""Fuzz: what socket.io clients and publishers can hand the Sockend, without a network.

The Sockend runs on an in-process mesh (:class:`coterie.testing.Mesh`: real
components and frames, no sockets) with a stand-in socket.io server that
records what is emitted. Arbitrary event names, namespaces and arguments go
through :meth:`Sockend.handle`, the path of every client event (payload
checks, reserved keys, routing, transformers, the request to a responder).
The properties:

- ``handle`` never raises, and answers ``(None, result)`` or ``(error,)``;
  the Sockend's own errors carry a documented code, never ``internal``
  (which means an exception it did not expect);
- an answer comes only for a type some responder of that namespace
  advertises, with an object payload whose JSON fits ``max_payload``; the
  responder sees it without the client's ``__subset`` / ``__timeout``;
- published data with any ``__room`` / ``__rooms`` values is relayed with
  those keys removed to a list of room names, or not at all, in order.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from hypothesis import event, example, given
from hypothesis import strategies as st

pytest.importorskip("socketio")

from coterie import Publisher
from coterie.gateways.sockend import RESERVED_KEYS, Sockend
from coterie.testing import Mesh
from tests.fuzz import exact_scalars, fuzz_settings, json_trees

MAX_PAYLOAD = 2048
#: The codes of the Sockend's own errors (docs/sockend.md); ``failed`` is a bug.
CODES = {"bad_request", "too_large", "no_handler", "rejected", "timeout", "queue_full",
         "closed", "gone"}  # fmt: skip
EXPOSED = {"/": {"echo", "fail"}, "/math": {"add"}}


class FakeIO:
    """The part of ``socketio.AsyncServer`` the Sockend uses: handlers and emit."""

    def __init__(self) -> None:
        self.handlers: dict[str, dict[str, Any]] = {}
        self.emitted: list[tuple[str, Any, str, list[str] | None]] = []
        self.marker = asyncio.Event()

    def on(self, event: str, handler: Any, namespace: str = "/") -> None:
        self.handlers.setdefault(namespace, {})[event] = handler

    async def emit(self, event: str, data: Any, namespace: str = "/", to: Any = None) -> None:
        assert to is None or (isinstance(to, list) and all(isinstance(r, str) for r in to)), to
        self.emitted.append((event, data, namespace, to))
        if event == "marker":
            self.marker.set()


@pytest.fixture
async def gateway() -> AsyncIterator[tuple[Sockend, FakeIO, Publisher]]:
    """A Sockend with an echo responder on ``/``, an adder on ``/math`` and a publisher."""
    async with Mesh() as mesh:
        echo = mesh.responder("echo")
        echo.on("echo", lambda req: req)

        @echo.on("fail")
        def fail(req: dict[str, Any]) -> None:
            raise ValueError(str(req.get("why", "no reason")))

        adder = mesh.responder("adder", namespace="math")
        adder.on("add", lambda req: [req.get("a"), req.get("b")])
        news = mesh.publisher("news", broadcasts=["news", "marker"])
        io = FakeIO()
        sockend = Sockend(
            io,
            "fuzz gateway",
            network=mesh.network,
            discovery=mesh.discovery(),
            environ=mesh.environ,
            max_payload=MAX_PAYLOAD,
            request_timeout=2.0,
        )

        @sockend.add_transformer
        def refuse_some(request: dict[str, Any], sid: str, namespace: str) -> None:
            if request.get("refuse") is True:
                raise PermissionError("refused by the application")

        mesh.components.append(sockend)
        await mesh.start()
        await sockend.wait_ready(None, timeout=5.0)
        await sockend.wait_ready("math", timeout=5.0)
        await sockend.wait_exposed(["echo", "fail"], timeout=5.0)
        await news.wait_subscribers(1, timeout=5.0)
        yield sockend, io, news


# -- strategies -------------------------------------------------------------------------

#: What a socket.io client can send (JSON, NaN and big integers included, and
#: binary attachments), and then some that only an application could pass.
client_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=20)
    | st.binary(max_size=20)
)
client_values = st.recursive(
    client_scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(max_size=8) | st.sampled_from(RESERVED_KEYS), inner, max_size=4)
    ),
    max_leaves=10,
)
#: JSON only: what a publisher's frame carries, and most client payloads.
json_values = json_trees(exact_scalars(2**63 - 1), width=4, key_size=8, leaves=10)
odd_values = st.sampled_from([object(), {1: "int key"}, {("t",): 1}, {1, 2}, (1, 2), math.inf])


def weighted(*choices: tuple[int, st.SearchStrategy[Any]]) -> st.SearchStrategy[Any]:
    """Draw from one of the strategies, each as often as its weight says."""
    return st.sampled_from([s for weight, s in choices for _ in range(weight)]).flatmap(
        lambda strategy: strategy
    )


keys = st.sampled_from([*RESERVED_KEYS, "type", "a", "b", "why", "refuse"]) | st.text(max_size=8)
payloads = weighted(
    (6, st.dictionaries(keys, json_values, max_size=5)),
    (1, st.dictionaries(keys, client_values, max_size=5)),
    (1, st.builds(lambda n: {"blob": "x" * n}, st.integers(MAX_PAYLOAD - 40, MAX_PAYLOAD + 40))),
    (1, st.just({"refuse": True})),
    (1, client_values),
    (1, odd_values),
)
events = weighted(
    (6, st.sampled_from(["echo", "fail", "add"])),
    (1, st.sampled_from(["connect", "disconnect", "newListener", "", "*"])),
    (1, st.text(max_size=20)),
    (1, client_values),
)
namespaces = weighted(
    (6, st.sampled_from(["/", "/math"])),
    (1, st.sampled_from(["/nowhere", "", "math", "//"])),
    (1, st.text(max_size=10)),
)
#: A namespace and an event name: often one a responder serves there.
routes = weighted(
    (3, st.sampled_from([("/", "echo"), ("/", "fail"), ("/math", "add")])),
    (3, st.tuples(namespaces, events)),
)


def jsonable(value: Any) -> bool:
    try:
        orjson.dumps(value)
    except (TypeError, orjson.JSONEncodeError):
        return False
    return True


# -- socket.io -> mesh ------------------------------------------------------------------


@fuzz_settings(ci=120)
@given(route=routes, sid=st.text(max_size=12), args=st.lists(payloads, max_size=3).map(tuple))
@example(route=("/", []), sid="", args=())  # found by this target: was an 'internal' error
@example(route=("/", "echo"), sid="", args=({"x": math.nan, "__subset": "s"},))
async def test_client_events_get_an_answer_or_a_documented_refusal(
    gateway: tuple[Sockend, FakeIO, Publisher],
    route: tuple[str, Any],
    sid: str,
    args: tuple[Any, ...],
) -> None:
    sockend, _io, _news = gateway
    sio_ns, event_name = route
    refused_before = sockend.refused
    ack = await sockend.handle(sio_ns, event_name, sid, *args)
    assert isinstance(ack, tuple) and len(ack) in (1, 2), ack
    payload = args[0] if args else {}
    if len(ack) == 1:
        (error,) = ack
        assert isinstance(error, dict), error
        if error.get("name") == "SockendError":
            assert error["code"] in CODES, error
            assert isinstance(error["message"], str) and error["message"]
            assert sockend.refused == refused_before + 1
            event(f"refused: {error['code']}")
        else:  # the responder's own error, as it arrived
            assert event_name == "fail" and sio_ns == "/", (event_name, error)
            assert error["name"] == "ValueError"
            event("remote error")
        return
    error, result = ack
    assert error is None
    event(f"answered: {event_name}")
    # Only an advertised type, on its namespace, with an object payload that fits.
    assert isinstance(event_name, str) and event_name in EXPOSED.get(sio_ns, set())
    assert isinstance(payload, dict) and jsonable(payload)
    assert len(orjson.dumps(payload)) <= MAX_PAYLOAD
    assert payload.get("refuse") is not True
    if event_name == "echo":
        sent = {k: v for k, v in payload.items() if k not in RESERVED_KEYS}
        sent["type"] = "echo"
        assert result == orjson.loads(orjson.dumps(sent))
        assert not set(RESERVED_KEYS) & set(result)


# -- mesh -> socket.io ------------------------------------------------------------------

rooms = st.none() | st.text(max_size=6) | st.integers() | json_values


@fuzz_settings(ci=60)
@given(
    data=st.dictionaries(st.text(max_size=6), json_values, max_size=3) | json_values,
    room=rooms,
    several=rooms,
    with_room=st.booleans(),
    with_rooms=st.booleans(),
)
async def test_published_data_is_relayed_with_its_rooms_or_not_at_all(
    gateway: tuple[Sockend, FakeIO, Publisher],
    data: Any,
    room: Any,
    several: Any,
    with_room: bool,
    with_rooms: bool,
) -> None:
    _sockend, io, news = gateway
    if isinstance(data, dict):
        data = dict(data)
        if with_room:
            data["__room"] = room
        if with_rooms:
            data["__rooms"] = several
    if not jsonable(data):
        return
    io.emitted.clear()  # flat memory over a long run
    before = 0
    io.marker.clear()
    # Through a real publisher: the frames reach the Sockend's subscriber in order.
    await news.publish("news", data)
    await news.publish("marker", {})
    async with asyncio.timeout(5.0):
        await io.marker.wait()
    emitted = io.emitted[before:]
    assert emitted[-1][0] == "marker"
    for name, relayed, namespace, to in emitted[:-1]:
        assert name == "news" and namespace == "/"
        if isinstance(relayed, dict):
            assert "__room" not in relayed and "__rooms" not in relayed
        assert to is None or (to and all(isinstance(r, str) for r in to))
        event("relayed to rooms" if to else "relayed to all")
    if len(emitted) == 1:
        event("relayed to no one")
