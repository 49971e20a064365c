"""``coterie call``, ``publish``, ``listen``, ``services`` and ``bench`` against Node cote.

The peers are real cote 1.2.0 components (interop/peer.js, through
tests/interop/nodepeer.py), so these run only inside the tests' private
network namespace, where Node's broadcasts to 255.255.255.255 stay on
loopback. The command runs as a user runs it, in a subprocess, on cote's
discovery port with the Node peers' hello interval.
"""

from __future__ import annotations

import asyncio
import json
import socket
from typing import Any

import pytest

from coterie import Responder
from coterie.discovery.options import DEFAULT_PORT
from tests.cli.support import coterie, discovery_flags, start_coterie
from tests.helpers import MS
from tests.interop.nodepeer import (
    FAST_DISCOVERY,
    NodePeer,
    python_discovery,
    require_node,
    require_private_netns,
)

pytestmark = pytest.mark.node

#: The command on the Node peers' mesh: cote's port, their hello interval.
MESH = discovery_flags(DEFAULT_PORT, FAST_DISCOVERY["helloInterval"])
NODE_VALIDATION = {"name": "node validation", "namespace": "payment", "respondsTo": ["validate"]}


@pytest.fixture(autouse=True)
def _node_and_namespace() -> None:
    require_private_netns()
    require_node()


@pytest.fixture
async def peers() -> Any:
    started: list[NodePeer] = []

    async def start(role: str, config: dict[str, Any]) -> NodePeer:
        peer = await NodePeer.start(role, config)
        started.append(peer)
        return peer

    yield start
    for peer in reversed(started):
        await peer.close()


async def test_call_a_node_responder(peers: Any) -> None:
    node = await peers("responder", NODE_VALIDATION)
    run = await coterie("call", "validate", '{"cardno": "4111"}', "--namespace", "payment", *MESH)
    assert (run.code, run.err) == (0, ""), run
    assert run.out == (
        f'{{"type": "validate", "cardno": "4111", "by": "node validation", "pid": {node.pid}}}\n'
    )


async def test_a_node_error_exits_1_and_a_typo_exits_124(peers: Any) -> None:
    config = {**NODE_VALIDATION, "reply": {"mode": "error", "message": "card declined"}}
    await peers("responder", config)
    failed = await coterie("call", "validate", "--namespace", "payment", *MESH)
    typo = await coterie(
        "call", "valdiate", "--namespace", "payment", "--timeout", str(500 * MS), *MESH
    )
    assert (failed.code, failed.out) == (1, ""), failed
    assert failed.err == "coterie call: the responder failed: Error: card declined\n"
    assert (typo.code, typo.out) == (124, ""), typo
    assert typo.err.startswith("coterie call: request ")
    assert typo.err.endswith(" ('valdiate') timed out waiting: no responder serves 'valdiate'\n")


async def test_call_all_asks_a_python_and_a_node_instance(peers: Any) -> None:
    node = await peers("responder", NODE_VALIDATION)
    python = Responder(name="python validation", namespace="payment", discovery=python_discovery())
    python.on("validate", lambda req: {"by": "python validation", "cardno": req["cardno"]})
    async with python:
        run = await coterie(
            "call", "validate", '{"cardno": "4111"}', "--all", "--namespace", "payment", *MESH
        )
    assert (run.code, run.err) == (0, ""), run
    lines = [json.loads(line) for line in run.out.splitlines()]
    assert [(x["name"], x["answer"]) for x in lines] == [
        ("node validation",
         {"type": "validate", "cardno": "4111", "by": "node validation", "pid": node.pid}),
        ("python validation", {"by": "python validation", "cardno": "4111"}),
    ]  # fmt: skip
    assert lines[1]["address"] == f"127.0.0.1:{python.port}"
    assert len(node.find("request")) == 1


async def test_listen_prints_a_node_publishers_events(peers: Any) -> None:
    publisher = await peers("publisher", {"name": "node payments", "namespace": "payment"})
    listen = await start_coterie(
        "listen", "payment.*", "--count", "1", "--namespace", "payment", *MESH
    )
    assert listen.stdout is not None
    # A publisher sends to the subscribers linked now: publish until the link is up.
    line = asyncio.ensure_future(listen.stdout.readline())
    sent = 0
    async with asyncio.timeout(10_000 * MS):
        while not line.done():
            sent += 1
            await publisher.send_cmd(
                {"cmd": "publish", "topic": "payment.done", "data": {"n": sent}}
            )
            await asyncio.wait([line], timeout=50 * MS)
    _, err = await asyncio.wait_for(listen.communicate(), 5_000 * MS)
    assert listen.returncode == 0, err
    got = json.loads(line.result())
    assert got["topic"] == "payment.done" and 1 <= got["data"]["n"] <= sent
    assert (
        line.result()
        == f'{{"topic": "payment.done", "data": {{"n": {got["data"]["n"]}}}}}\n'.encode()
    )


async def test_publish_reaches_a_node_subscriber(peers: Any) -> None:
    subscriber = await peers("subscriber", {"name": "node audit", "namespace": "payment"})
    run = await coterie(
        "publish", "payment.done", '{"amount": 5}', "--namespace", "payment", *MESH, quiet=False
    )
    assert run.code == 0, run
    assert run.err == "coterie publish: 'payment.done' went to 1 subscriber(s)\n"
    message = await subscriber.wait_for("message", timeout=5_000 * MS)
    assert (message["topic"], message["data"]) == ("payment.done", {"amount": 5})


async def test_services_lists_a_node_responder(peers: Any) -> None:
    node = await peers("responder", NODE_VALIDATION)
    run = await coterie("services", "--json", "--listen", str(800 * MS), *MESH)
    assert run.code == 0, run
    (row,) = json.loads(run.out)
    # Where a requester connects: a Node hello from an unaddressed host comes from
    # 0.0.0.0, so the host name it announced.
    assert node.ready is not None
    assert row == {
        "name": "node validation", "id": row["id"], "types": ["validate"],
        "namespace": "payment", "key": "$$", "address": socket.gethostname(),
        "port": node.ready["advertisement"]["port"], "tls": False,
    }  # fmt: skip


async def test_bench_a_node_responder(peers: Any) -> None:
    node = await peers("responder", {**NODE_VALIDATION, "quiet": True})
    run = await coterie(
        "bench", "validate", '{"cardno": "4111"}', "-c", "20", "-n", "500", "--json",
        "--namespace", "payment", *MESH,
    )  # fmt: skip
    assert run.code == 0, run
    doc = json.loads(run.out)
    assert (doc["requests"], doc["errors"]) == (500, 0)
    assert 0 < doc["p50_ms"] <= doc["p99_ms"]
    assert node.proc.returncode is None
