"""The Node side of the interop tests works on its own: Node cote talks to Node cote."""

from __future__ import annotations

from tests.helpers import MS, ms
from tests.interop.conftest import NodePeerFactory
from tests.interop.nodepeer import FAST_DISCOVERY


async def test_node_requester_gets_reply_from_node_responder(node_peer: NodePeerFactory) -> None:
    responder = await node_peer("responder", {"name": "node echo", "respondsTo": ["ping"]})
    requester = await node_peer("requester", {"name": "node caller"})
    await requester.wait_for("added", timeout=5_000 * MS)

    reply = await requester.request({"type": "ping", "n": 7}, timeout=5_000 * MS)

    assert reply["err"] is None
    res = reply["res"]
    assert res["type"] == "ping"
    assert res["n"] == 7
    assert res["by"] == "node echo"
    assert res["pid"] == responder.pid
    seen = await responder.wait_for("request", timeout=2_000 * MS)
    assert seen["req"]["n"] == 7


async def test_node_responder_error_modes(node_peer: NodePeerFactory) -> None:
    thrower = await node_peer(
        "responder", {"name": "thrower", "namespace": "t", "reply": {"mode": "throw"}}
    )
    failing = {"mode": "error", "message": "no"}
    failer = await node_peer("responder", {"name": "failer", "namespace": "e", "reply": failing})
    req_t = await node_peer("requester", {"name": "caller t", "namespace": "t"})
    req_e = await node_peer("requester", {"name": "caller e", "namespace": "e"})
    await req_t.wait_for("added", timeout=5_000 * MS)
    await req_e.wait_for("added", timeout=5_000 * MS)

    # A thrown Error travels as JSON, so it arrives as {}.
    reply = await req_t.request({"type": "x"}, timeout=5_000 * MS)
    assert reply["err"] == {}
    assert not reply.get("errLocal")
    reply = await req_e.request({"type": "x"}, timeout=5_000 * MS)
    assert reply["err"] == {"name": "Error", "message": "no"}
    assert thrower.find("request") and failer.find("request")


async def test_node_request_timeout_is_local_error(node_peer: NodePeerFactory) -> None:
    await node_peer("responder", {"name": "slow", "reply": {"delayMs": ms(2_000)}})
    requester = await node_peer("requester", {"name": "impatient"})
    await requester.wait_for("added", timeout=5_000 * MS)

    reply = await requester.request({"type": "slow"}, timeout=300 * MS)

    assert reply["errLocal"] is True
    assert reply["err"]["message"] == "Request timed out."


async def test_node_bench_command(node_peer: NodePeerFactory) -> None:
    await node_peer("responder", {"name": "bench echo"})
    requester = await node_peer("requester", {"name": "bench caller"})
    await requester.wait_for("added", timeout=5_000 * MS)

    await requester.send_cmd(
        {"cmd": "bench", "n": 50, "concurrency": 4, "req": {"type": "b"}, "latencies": True}
    )
    result = await requester.wait_for("bench", timeout=10_000 * MS)

    assert result["n"] == 50
    assert result["errors"] == 0
    assert result["seconds"] > 0
    assert len(result["latencies_us"]) == 50


async def test_node_publisher_to_node_subscriber(node_peer: NodePeerFactory) -> None:
    publisher = await node_peer("publisher", {"name": "news", "namespace": "rnd"})
    subscriber = await node_peer("subscriber", {"name": "reader", "namespace": "rnd"})
    await publisher.wait_for("added", timeout=5_000 * MS)
    await subscriber.wait_for("added", timeout=5_000 * MS)

    # The subscriber's TCP connection may trail discovery: publish until one arrives.
    for _ in range(20):
        await publisher.send_cmd({"cmd": "publish", "topic": "update", "data": {"a": 1}})
        try:
            message = await subscriber.wait_for("message", timeout=250 * MS)
            break
        except AssertionError:
            continue
    else:
        raise AssertionError(subscriber.describe())

    assert message == {"event": "message", "topic": "update", "data": {"a": 1}}


async def test_node_options_reach_cote(node_peer: NodePeerFactory) -> None:
    discovery = {**FAST_DISCOVERY, "key": "secret"}
    common = {"environment": "prod", "key": "users", "discovery": discovery}
    await node_peer("responder", {"name": "users", **common})
    requester = await node_peer("requester", {"name": "users client", **common})

    added = await requester.wait_for("added", timeout=5_000 * MS)
    assert added["advertisement"]["key"] == "prod:$$users"
    reply = await requester.request({"type": "get"}, timeout=5_000 * MS)
    assert reply["res"]["by"] == "users"
