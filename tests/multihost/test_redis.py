"""Redis discovery across subnets: redis-server on the router, coterie and Node cote on both sides.

Broadcasts stop at the router, so a node on segment a and one on segment b
find each other only through Redis. coterie announces the local address of
its route to Redis as its address (coterie peers dial it) and, as cote, the
machine's name as its host name, which Node cote dials: a node that Node
peers dial is given ``DISCOVERY_HOSTNAME`` (its address), as cote's own
nodes are.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from tests.bed import Bed, Host
from tests.multihost.conftest import PeerFactory
from tests.multihost.peers import replies_from
from tests.multihost.servers import RedisOnRouter


def _env(redis: RedisOnRouter, host: Host, node: bool = False) -> dict[str, str]:
    env = {"COTE_DISCOVERY_REDIS_URL": redis.url(host)}
    if node:  # cote dials the host name it hears; the machine's name leads nowhere here
        env["DISCOVERY_HOSTNAME"] = host.address
    return env


def _dialled_by_node(redis: RedisOnRouter, host: Host) -> dict[str, str]:
    """A coterie node a Node peer dials: its host name must lead to it, as for cote."""
    return {**_env(redis, host), "DISCOVERY_HOSTNAME": host.address}


async def test_coterie_and_node_pair_across_subnets_over_redis_and_survive_a_restart(
    bed: Bed, peer: PeerFactory, redis: RedisOnRouter
) -> None:
    a1, a2, a3, b1, b2, b3 = (bed[n] for n in ("a1", "a2", "a3", "b1", "b2", "b3"))
    py_rep, node_rep, node_req, py_req_k2, py_req = await asyncio.gather(
        peer(a1, "python", "responder", {"name": "py-rep", "key": "k1"},
             env=_dialled_by_node(redis, a1)),
        peer(a2, "node", "responder", {"name": "node-rep", "key": "k2"},
             env=_env(redis, a2, node=True)),
        peer(b1, "node", "requester", {"name": "node-req", "key": "k1"},
             env=_env(redis, b1, node=True)),
        peer(b2, "python", "requester", {"name": "py-req-k2", "key": "k2"}, env=_env(redis, b2)),
        peer(b3, "python", "requester", {"name": "py-req", "key": "k1"}, env=_env(redis, b3)),
    )  # fmt: skip
    assert py_rep.ready is not None and py_rep.ready["advertised"] == [a1.address]

    # Node -> coterie: cote dials the host name coterie announces.
    reply = await node_req.request({"type": "echo", "n": 1}, timeout=5)
    assert reply["err"] is None and reply["res"]["by"] == "py-rep", node_req.describe()

    # coterie -> Node: Node announces 127.0.0.1 and no source comes with Redis,
    # so coterie dials the host name (DISCOVERY_HOSTNAME), never localhost.
    reply = await py_req_k2.request({"type": "echo", "n": 2}, timeout=5)
    assert reply["err"] is None and reply["res"]["by"] == "node-rep", py_req_k2.describe()
    seen = await py_req_k2.wait_for("added", timeout=1)
    assert (seen["address"], seen["advertised"], seen["connect"]) == (
        "0.0.0.0", "127.0.0.1", a2.address)  # fmt: skip

    # coterie -> coterie: the announced address.
    await replies_from(py_req, "py-rep")
    seen = await py_req.wait_for("added", timeout=1)
    assert seen["advertised"] == seen["host_name"] == seen["connect"] == a1.address

    # Redis restarts: linked nodes stay linked, and a node started after the
    # restart is found from the other subnet. (Node cote 1.2.0 exits on the
    # connection error, an 'error' event nobody handles: its peers go first.)
    await asyncio.gather(*(p.close() for p in (node_req, node_rep)))
    await redis.stop()
    await redis.start()
    await peer(a3, "python", "responder", {"name": "late", "key": "k1"}, env=_env(redis, a3))
    await py_req.wait_for("added", timeout=10, predicate=_named("late"))
    await replies_from(py_req, "late")
    await replies_from(py_req, "py-rep")
    assert py_req.find("removed") == []


def _named(name: str) -> Callable[[dict[str, Any]], bool]:
    return lambda event: event["advertisement"].get("name") == name
