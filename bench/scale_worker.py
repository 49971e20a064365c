"""One process of the scale harness: many coterie components, driven by JSON lines.

    python -m bench.scale_worker mesh '<json config>'

Design: the driver (:mod:`bench.scale`) spawns K of these, waits until each
has imported coterie (``loaded``), then sends ``go`` to all at once, so the
convergence time starts at one instant for the whole mesh and leaves out
Python's start-up. The twin for Node cote is ``bench/scale_worker.js``; both
speak the same lines.

config: ``components`` (a list of ``{"role": "rep"|"req", "name", "namespace",
"expect"}``, ``expect`` being how many responders a requester must link to),
``discovery`` (DiscoveryOptions fields, snake_case).

stdin: ``{"cmd": "go"}`` starts every component; ``{"cmd": "exit"}`` (or end
of input) closes them and exits.

stdout: ``loaded``; ``started`` (with the components' ids); ``linked`` each
time every requester of the process holds all its links (again), and
``unlinked`` when one no longer does;
``removed`` for every pairing peer a component drops (``id``), the driver
telling healthy removals from due ones; ``closed``.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import coterie
from bench import lines
from bench.lines import commands, emit

#: How often the worker looks at its requesters' link counts.
_POLL = 0.02


async def run(_role: str, config: dict[str, Any]) -> None:
    """Run the components until told to exit."""
    discovery = coterie.DiscoveryOptions(log=False, **config.get("discovery", {}))
    specs: list[dict[str, Any]] = config["components"]
    emit({"event": "loaded"})
    stdin = commands()
    cmd = await anext(stdin, {"cmd": "exit"})
    if cmd.get("cmd") != "go":
        return
    comps: list[Any] = []
    for spec in specs:
        cls = coterie.Responder if spec["role"] == "rep" else coterie.Requester
        comp = cls(name=spec["name"], namespace=spec["namespace"], discovery=discovery)
        comp.on_node(
            lambda event, node: (
                emit({"event": "removed", "id": node.id}) if event == "removed" else None
            )
        )
        comps.append(comp)
    await asyncio.gather(*(c.start() for c in comps))
    emit({"event": "started", "ids": [c.id for c in comps]})
    requesters = [(c, s["expect"]) for c, s in zip(comps, specs, strict=True) if s["role"] == "req"]

    async def watch_links() -> None:
        linked = False
        while True:
            now = all(r.connected >= n for r, n in requesters)
            if now != linked:
                emit({"event": "linked" if now else "unlinked"})
            linked = now
            await asyncio.sleep(_POLL)

    watcher = asyncio.create_task(watch_links())
    async for _cmd in stdin:  # up to exit or the end of input
        pass
    watcher.cancel()
    await asyncio.gather(*(c.close() for c in comps), return_exceptions=True)
    emit({"event": "closed"})


if __name__ == "__main__":
    sys.exit(lines.main(sys.argv[1:], ("mesh",), run))
