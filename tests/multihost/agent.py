"""A coterie component driven by JSON lines: the Python twin of ``interop/peer.js``.

    python -m tests.multihost.agent <role> '<json config>'

role: ``responder`` or ``requester``. config (all optional): ``name``,
``namespace``, ``key``, ``respondsTo`` (responders; default ``["echo"]``),
``discovery`` (:class:`coterie.DiscoveryOptions` fields), ``reply``
(``{"delayMs": N}``), ``quiet``, ``lifetime`` (seconds before it exits by
itself; 300), ``options`` (requesters: more keyword arguments of
:class:`coterie.Requester`).

It speaks ``peer.js``'s protocol, so :class:`tests.interop.nodepeer.NodePeer`
drives both. stdout, one JSON object a line: ``ready`` (with ``advertised``,
the addresses its hellos announce), ``added`` / ``removed`` (with
``address``, ``advertised`` and ``connect``, where it would dial), ``request``,
``reply``, ``linked`` (a requester's link count reached ``count``),
``status``, ``closed``. stdin: ``send``, ``wait_linked`` (``count``,
``timeout`` in ms), ``status``, ``exit`` (or end of input).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import time
from typing import Any

from coterie import DiscoveryOptions, Requester, Responder
from coterie.components.base import Component
from coterie.protocol.nodes import Node


def emit(obj: dict[str, Any]) -> None:
    """Write one event line."""
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def _node(event: str, node: Node, use_host_names: bool) -> dict[str, Any]:
    return {
        "event": event,
        "id": node.id,
        "advertisement": node.advertisement,
        "address": node.address,
        "advertised": node.advertised,
        "host_name": node.host_name,
        "connect": node.connect_host(use_host_names),
        "t": time.time(),
    }


async def _stdin_lines() -> asyncio.StreamReader:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    return reader


async def run(role: str, cfg: dict[str, Any]) -> None:
    """Run one component until ``exit``, end of input or its lifetime."""
    options = DiscoveryOptions(**cfg.get("discovery", {}))
    name = cfg.get("name", f"py {role}")
    common: dict[str, Any] = {
        "namespace": cfg.get("namespace"),
        "key": cfg.get("key"),
        "discovery": options,
    }
    component: Component
    if role == "responder":
        responder = component = Responder(name, **common)
        delay = cfg.get("reply", {}).get("delayMs", 0) / 1000

        async def handle(req: dict[str, Any]) -> dict[str, Any]:
            if not cfg.get("quiet"):
                emit({"event": "request", "req": req})
            if delay:
                await asyncio.sleep(delay)
            return {**req, "by": name, "pid": os.getpid()}

        for request_type in cfg.get("respondsTo", ["echo"]):
            responder.on(request_type, handle)
    elif role == "requester":
        component = Requester(
            name, timeout=cfg.get("timeout", 10.0), **common, **cfg.get("options", {})
        )
    else:
        raise SystemExit(f"role must be responder or requester, not {role!r}")

    tasks: set[asyncio.Task[Any]] = set()
    async with component:
        settings = component.discovery_settings
        assert settings is not None and component.discovery is not None
        component.on_node(lambda e, n: emit(_node(e, n, settings.use_host_names)))
        emit(
            {
                "event": "ready",
                "pid": os.getpid(),
                "id": component.id,
                "advertisement": component.advertisement,
                "advertised": list(component.discovery.advertised),
                "t": time.time(),
            }
        )
        reader = await _stdin_lines()
        deadline = asyncio.get_running_loop().time() + cfg.get("lifetime", 300)
        while True:
            try:
                async with asyncio.timeout_at(deadline):
                    line = await reader.readline()
            except TimeoutError:
                break
            if not line:
                break
            cmd = json.loads(line)
            if cmd.get("cmd") == "exit":
                break
            task = asyncio.create_task(_command(component, cmd))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        for task in tasks:
            task.cancel()
    emit({"event": "closed"})


async def _command(component: Component, cmd: dict[str, Any]) -> None:
    what = cmd.get("cmd")
    if what == "status":
        peers = [_node("peer", n, False) for n in component.peers]
        connected = component.connected if isinstance(component, Requester) else None
        emit(
            {
                "event": "status",
                "peers": peers,
                "connected": connected,
                "members": sorted(component.discovery.members or ()) if component.discovery else [],
            }
        )
    elif what == "send" and isinstance(component, Requester):
        timeout = cmd.get("timeout")
        try:
            res = await component.send(cmd["req"], timeout=timeout / 1000 if timeout else None)
            emit({"event": "reply", "seq": cmd.get("seq"), "err": None, "res": res})
        except Exception as exc:
            err = {"name": type(exc).__name__, "message": str(exc)}
            emit(
                {"event": "reply", "seq": cmd.get("seq"), "err": err, "res": None, "errLocal": True}
            )
    elif what == "wait_linked" and isinstance(component, Requester):
        count = int(cmd["count"])
        try:
            await component.wait_connected(count, timeout=cmd.get("timeout", 30_000) / 1000)
            emit({"event": "linked", "count": component.connected, "t": time.time()})
        except TimeoutError:
            emit(
                {"event": "linked", "count": component.connected, "t": time.time(), "timeout": True}
            )
    else:
        emit({"event": "error", "message": f"command not understood: {cmd!r}"})


def main() -> None:
    """``python -m tests.multihost.agent <role> '<json config>'``."""
    role = sys.argv[1]
    cfg = json.loads(sys.argv[2]) if len(sys.argv) > 2 else {}
    logging.basicConfig(
        level=logging.INFO if cfg.get("log") else logging.WARNING,
        format=f"%(asctime)s {cfg.get('name', role)} %(name)s %(levelname)s %(message)s",
        stream=sys.stderr,
    )
    asyncio.run(run(role, cfg))


if __name__ == "__main__":
    main()
