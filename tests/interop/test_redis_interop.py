"""Redis discovery shared by coterie and real Node cote 1.2.0.

Both sides publish their hellos on the Redis channel ``cote`` and connect by
announced host name (``DISCOVERY_HOSTNAME=127.0.0.1``), as cote does.
"""

from __future__ import annotations

from typing import Any

from coterie import DiscoveryOptions, Requester, Responder
from tests.helpers import MS
from tests.interop.conftest import NodePeerFactory
from tests.interop.nodepeer import FAST_DISCOVERY, python_discovery


def _python_discovery(redis_url: str) -> DiscoveryOptions:
    return python_discovery(redis=redis_url, hostname="127.0.0.1")


def _node_env(redis_url: str) -> dict[str, str]:
    return {"COTE_DISCOVERY_REDIS_URL": redis_url, "DISCOVERY_HOSTNAME": "127.0.0.1"}


async def test_node_requester_finds_python_responder_over_redis(
    node_peer: NodePeerFactory, redis_url: str
) -> None:
    seen: list[dict[str, Any]] = []

    def validate(req: dict[str, Any]) -> str:
        seen.append(req)
        return f"{req['cardno']} validated"

    async with Responder(name="py validation", discovery=_python_discovery(redis_url)) as rep:
        rep.on("validate", validate)
        requester = await node_peer(
            "requester",
            {"name": "node payments", "discovery": dict(FAST_DISCOVERY)},
            env=_node_env(redis_url),
        )
        added = await requester.wait_for("added", timeout=5_000 * MS)
        reply = await requester.request({"type": "validate", "cardno": "4111"}, timeout=5_000 * MS)
    assert reply["err"] is None, reply
    assert reply["res"] == "4111 validated"
    assert [r["cardno"] for r in seen] == ["4111"]
    assert added["advertisement"]["name"] == "py validation"


async def test_python_requester_finds_node_responder_over_redis(
    node_peer: NodePeerFactory, redis_url: str
) -> None:
    await node_peer(
        "responder",
        {"name": "node validation", "discovery": dict(FAST_DISCOVERY)},
        env=_node_env(redis_url),
    )
    async with Requester(
        name="py payments", discovery=_python_discovery(redis_url), timeout=5_000 * MS
    ) as req:
        res = await req.send({"type": "validate", "cardno": "4111"})
        assert res["by"] == "node validation"
        assert res["cardno"] == "4111"
        (peer,) = req.peers
        assert peer.host_name == "127.0.0.1"
