"""Components in bed hosts: coterie (``tests.multihost.agent``) and Node cote (``peer.js``).

Both speak the same JSON lines, so one driver, :class:`BedPeer` (a
:class:`~tests.interop.nodepeer.NodePeer` that also notes when each event
arrived), runs either in any host of a :class:`~tests.bed.Bed`::

    rep = await start_peer(bed["a1"], "python", "responder", {"respondsTo": ["echo"]})
    req = await start_peer(bed["a2"], "node", "requester")
    reply = await req.request({"type": "echo", "n": 1})
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from collections.abc import Mapping
from typing import Any, Literal

from tests.bed import Host, host_environment
from tests.interop.nodepeer import PEER_SCRIPT, NodePeer, node_unavailable_reason

Kind = Literal["python", "node"]

#: Discovery timings for the bed, in ms: fast, with room for a busy 2-core machine.
HELLO, CHECK, NODE_TIMEOUT, MASTER_TIMEOUT = 200, 400, 1500, 2000

#: Node cote's option names for them.
NODE_DISCOVERY: dict[str, Any] = {
    "helloInterval": HELLO,
    "checkInterval": CHECK,
    "nodeTimeout": NODE_TIMEOUT,
    "masterTimeout": MASTER_TIMEOUT,
}
#: coterie's.
PYTHON_DISCOVERY: dict[str, Any] = {
    "hello_interval": HELLO,
    "check_interval": CHECK,
    "node_timeout": NODE_TIMEOUT,
    "master_timeout": MASTER_TIMEOUT,
}


class BedPeer(NodePeer):
    """A component running in a bed host; each event gets ``_rx``, its arrival time."""

    host: Host
    kind: Kind

    def _received(self, event: dict[str, Any]) -> None:
        event["_rx"] = time.time()

    def describe(self) -> str:
        """The driver's report, with the host it runs in."""
        return f"[{self.kind} on {self.host.name} {self.host.address}] " + super().describe()

    def added(self, name: str | None = None) -> list[dict[str, Any]]:
        """``added`` events so far (of the component called ``name``)."""
        return self.find("added", lambda e: name is None or e["advertisement"].get("name") == name)


async def start_peer(
    host: Host,
    kind: Kind,
    role: str,
    config: Mapping[str, Any] | None = None,
    *,
    env: Mapping[str, str] | None = None,
    ready_timeout: float = 20.0,
) -> BedPeer:
    """Start a coterie or Node cote component in ``host`` and wait until it is ready.

    Args:
        host: Where it runs.
        kind: ``"python"`` (coterie) or ``"node"`` (cote 1.2.0).
        role: ``responder`` or ``requester`` (and the other ``peer.js`` roles
            for Node).
        config: The agent's or ``peer.js``'s config; ``discovery`` gets the
            bed's fast timings unless given.
        env: Extra environment variables (``COTE_*`` included: the test
            session's own are not passed on).
        ready_timeout: Seconds to wait for ``ready``.
    """
    config = dict(config or {})
    discovery = dict(config.get("discovery") or {})
    if kind == "node":
        reason = node_unavailable_reason()
        if reason is not None:
            import pytest

            pytest.skip(reason)
        config["discovery"] = {**NODE_DISCOVERY, **discovery}
        argv = ["node", str(PEER_SCRIPT), role, json.dumps(config)]
    else:
        config["discovery"] = {**PYTHON_DISCOVERY, **discovery}
        argv = [sys.executable, "-m", "tests.multihost.agent", role, json.dumps(config)]
    proc = await host.spawn(
        argv,
        env=host_environment(env),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    peer = BedPeer(role, config, proc)
    peer.host, peer.kind = host, kind
    await peer.wait_ready(ready_timeout)
    return peer


async def close_all(peers: list[BedPeer]) -> None:
    """Close peers concurrently (each is killed past its timeout)."""
    with contextlib.suppress(Exception):
        await asyncio.gather(*(p.close(timeout=3.0) for p in peers), return_exceptions=True)


async def replies_from(req: BedPeer, name: str, within: float = 5.0) -> None:
    """Send echo requests through ``req`` until one is answered by ``name``.

    A requester hears of a responder before its link is up; until then the
    others answer. Every reply must be a success.

    Raises:
        AssertionError: When ``name`` has not answered within ``within`` seconds.
    """
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        reply = await req.request({"type": "echo"}, timeout=5)
        assert reply["err"] is None, req.describe()
        if reply["res"]["by"] == name:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"no reply from {name} within {within} s\n{req.describe()}")
