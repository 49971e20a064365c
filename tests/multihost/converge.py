"""Convergence on the bed: N responder processes over several hosts, one requester.

    python -m tests.multihost.converge [--responders 30] [--hosts 3] [--kind python node]

(as root; it makes its own private network namespace and bed). For each kind,
coterie (``tests.multihost.agent``) and Node cote (``interop/peer.js``), with
cote's default discovery timings (hello every 2 s):

- *join*: the responders are up and settled, then the requester starts; the
  time from its start (and from its ``ready``) until it is linked to all N;
- *cold*: the requester is up first, then all N responders start at once;
  the time from the last responder's ``ready`` until the requester is linked
  to all N;
- *idle CPU*: with the whole mesh up, the CPU the requester and one
  responder use over a window, as a share of one core.

"Linked" is the requester's link count for coterie (``wait_connected``) and
its N-th ``cote:added`` event for Node cote (cote connects on that event;
the connection itself is not reported, so Node's figure is a lower bound).
``tests/multihost/test_converge.py`` runs a small version in CI; the full
figures are in ``docs/deploy.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from typing import Any

from tests import netns
from tests.bed import Bed, Host
from tests.multihost.peers import BedPeer, Kind, close_all, start_peer

#: cote's defaults, the timings a deployment runs with.
DEFAULT_TIMINGS = {"hello": 2000, "check": 4000, "node_timeout": 5000, "master_timeout": 6000}


def _discovery(kind: Kind, timings: dict[str, int]) -> dict[str, Any]:
    if kind == "node":
        return {"helloInterval": timings["hello"], "checkInterval": timings["check"],
                "nodeTimeout": timings["node_timeout"],
                "masterTimeout": timings["master_timeout"]}  # fmt: skip
    return {"hello_interval": timings["hello"], "check_interval": timings["check"],
            "node_timeout": timings["node_timeout"],
            "master_timeout": timings["master_timeout"]}  # fmt: skip


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _idle_cpu(peers: list[BedPeer], window: float) -> list[float]:
    before = [_cpu_seconds(p.pid) for p in peers]
    await asyncio.sleep(window)
    return [(_cpu_seconds(p.pid) - b) / window for p, b in zip(peers, before, strict=True)]


async def _responders(
    hosts: list[Host], kind: Kind, count: int, key: str, timings: dict[str, int]
) -> list[BedPeer]:
    config = {"key": key, "quiet": True, "discovery": _discovery(kind, timings), "lifetime": 900}
    return list(
        await asyncio.gather(
            *(start_peer(hosts[i % len(hosts)], kind, "responder",
                         {**config, "name": f"rep-{i}"}, ready_timeout=120)
              for i in range(count))
        )
    )  # fmt: skip


async def _requester(host: Host, kind: Kind, key: str, timings: dict[str, int]) -> BedPeer:
    config = {"name": "req", "key": key, "discovery": _discovery(kind, timings), "lifetime": 900}
    return await start_peer(host, kind, "requester", config, ready_timeout=60)


async def _linked(req: BedPeer, count: int, timeout: float) -> float:
    """When ``req`` was linked to ``count`` responders (wall clock)."""
    if req.kind == "python":
        await req.send_cmd({"cmd": "wait_linked", "count": count, "timeout": timeout * 1000})
        event = await req.wait_for("linked", timeout=timeout + 5)
        assert not event.get("timeout"), f"linked to {event['count']} of {count}"
        return float(event["t"])
    added = await req.wait_for_count(
        "added",
        count,
        timeout=timeout,
        predicate=lambda e: e["advertisement"].get("axon_type") == "rep",
    )
    return float(added[count - 1]["_rx"])


async def measure(
    bed: Bed,
    kind: Kind,
    *,
    responders: int = 30,
    hosts: list[Host] | None = None,
    requester_host: Host | None = None,
    timings: dict[str, int] | None = None,
    settle: float = 3.0,
    cpu_window: float | None = 10.0,
    cold: bool = True,
) -> dict[str, Any]:
    """Measure join and cold convergence and idle CPU for one kind; see the module docs."""
    timings = timings or DEFAULT_TIMINGS
    hosts = hosts or bed.on("a")[:3]
    requester_host = requester_host or bed.on("a")[len(hosts)]
    timeout = 60.0
    result: dict[str, Any] = {"kind": kind, "responders": responders, "hosts": len(hosts),
                              "hello_ms": timings["hello"]}  # fmt: skip
    # Join: the mesh is up, the requester comes.
    reps = await _responders(hosts, kind, responders, "join", timings)
    try:
        await asyncio.sleep(settle)
        started = time.time()
        req = await _requester(requester_host, kind, "join", timings)
        try:
            assert req.ready is not None
            linked = await _linked(req, responders, timeout)
            result["join_from_start_s"] = round(linked - started, 3)
            result["join_from_ready_s"] = round(linked - req.ready["_rx"], 3)
            if cpu_window:
                await asyncio.sleep(min(settle, 2.0))
                cpu = await _idle_cpu([req, reps[0]], cpu_window)
                result["idle_cpu_requester_pct"] = round(100 * cpu[0], 2)
                result["idle_cpu_responder_pct"] = round(100 * cpu[1], 2)
        finally:
            await close_all([req])
    finally:
        await close_all(reps)
    if not cold:
        return result
    # Cold: the requester waits, the responders all start at once.
    req = await _requester(requester_host, kind, "cold", timings)
    try:
        waiting = asyncio.create_task(_linked(req, responders, timeout + 60))
        reps = await _responders(hosts, kind, responders, "cold", timings)
        try:
            linked = await waiting
            last_ready = max(r.ready["_rx"] for r in reps if r.ready is not None)
            result["cold_after_last_ready_s"] = round(max(0.0, linked - last_ready), 3)
        finally:
            await close_all(reps)
    finally:
        await close_all([req])
    return result


async def _main(args: argparse.Namespace) -> list[dict[str, Any]]:
    results = []
    with Bed(hosts_per_segment=args.hosts + 1, segments=1, ttl=1800) as bed:
        for kind in args.kind:
            result = await measure(bed, kind, responders=args.responders,
                                   hosts=bed.on("a")[: args.hosts],
                                   requester_host=bed.on("a")[args.hosts],
                                   cpu_window=args.cpu_window)  # fmt: skip
            print(json.dumps(result), flush=True)
            results.append(result)
    return results


def main() -> int:
    """Make a private namespace and a bed, measure, print one JSON line per kind."""
    parser = argparse.ArgumentParser(prog="python -m tests.multihost.converge")
    parser.add_argument("--responders", type=int, default=30)
    parser.add_argument("--hosts", type=int, default=3)
    parser.add_argument("--kind", nargs="+", default=["python", "node"], choices=["python", "node"])
    parser.add_argument("--cpu-window", type=float, default=10.0)
    args = parser.parse_args()
    if not netns.enter_private_netns():
        print(f"converge: {netns.reason_unavailable}", file=sys.stderr)
        return 1
    asyncio.run(_main(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
