"""coterie.testing: components in one loop, no sockets, no discovery delay."""

from __future__ import annotations

import asyncio
import socket

import pytest

from coterie import RemoteError, Responder
from coterie.testing import Mesh, call


async def test_request_reply_without_sockets(
    coterie_mesh: Mesh, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_sockets(*args: object, **kwargs: object) -> None:
        raise AssertionError("coterie.testing opened a socket")

    monkeypatch.setattr(socket, "socket", no_sockets)
    validator = coterie_mesh.responder("validation")
    validator.on("validate", lambda req: req["cardno"].startswith("4"))
    payment = coterie_mesh.requester("payment")
    async with validator, payment:
        assert await payment.send({"type": "validate", "cardno": "4111"}) is True
        assert await payment.send({"type": "validate", "cardno": "5111"}) is False
    assert coterie_mesh.network.connections == 1


async def test_first_contact_takes_no_discovery_interval(coterie_mesh: Mesh) -> None:
    # The mesh's hello interval is a second: finding each other must not wait for it.
    rep = coterie_mesh.responder("r")
    rep.on("ping", lambda req: "pong")
    req = coterie_mesh.requester("q")
    async with rep, req:
        # Half the mesh's hello interval: only fast contact can link them in time.
        await req.wait_connected(1, timeout=0.5)
        assert await req.send({"type": "ping"}) == "pong"


async def test_balancing_and_failover_work_in_memory(coterie_mesh: Mesh) -> None:
    a, b = coterie_mesh.responder("a"), coterie_mesh.responder("b")
    a.on("who", lambda req: "a")
    b.on("who", lambda req: "b")
    req = coterie_mesh.requester("q")
    async with a, b, req:
        await req.wait_connected(2, timeout=1)
        assert {await req.send({"type": "who"}) for _ in range(4)} == {"a", "b"}
        await b.close()
        assert {await req.send({"type": "who"}) for _ in range(4)} == {"a"}


async def test_pub_sub_in_memory(coterie_mesh: Mesh) -> None:
    pub, sub = coterie_mesh.publisher("p"), coterie_mesh.subscriber("s")
    got: asyncio.Queue[object] = asyncio.Queue()
    sub.on("update", got.put_nowait)
    async with pub, sub:
        await sub.wait_connected(1, timeout=1)
        await pub.publish("update", {"n": 1})
        assert await asyncio.wait_for(got.get(), 1) == {"n": 1}


async def test_separate_meshes_do_not_see_each_other() -> None:
    async with Mesh() as one, Mesh() as two:
        rep = one.responder("r")
        rep.on("x", lambda req: 1)
        req = two.requester("q", timeout=0.2)
        async with rep, req:
            with pytest.raises(TimeoutError):
                await req.send({"type": "x"})


async def test_call_runs_a_handler_as_a_requester_would_see_it() -> None:
    rep = Responder("validation")

    @rep.on("validate")
    async def validate(req: dict[str, str]) -> dict[str, object]:
        if not req["cardno"].isdigit():
            raise ValueError("not a card number")
        return {"valid": True, "digits": (len(req["cardno"]),)}

    assert await call(rep, {"type": "validate", "cardno": "4111"}) == {
        "valid": True,
        "digits": [4],  # a tuple arrives as a JSON list
    }
    with pytest.raises(RemoteError) as failed:
        await call(rep, {"type": "validate", "cardno": "abc"})
    assert failed.value.name == "ValueError" and failed.value.message == "not a card number"
    with pytest.raises(RemoteError, match="no handler for request type 'nosuch'"):
        await call(rep, {"type": "nosuch"})
