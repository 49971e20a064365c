r"""Idle CPU of a requester linked to R responders: coterie against Node cote 1.2.0.

Usage (as root, so it can make a private network namespace; Node cote
broadcasts to 255.255.255.255 and must never reach the LAN)::

    .venv/bin/python scripts/idle_requester.py --responders 30 300 --seconds 20 \\
        [--before-src /tmp/coterie-before/src]

What runs, all inside one private network namespace that only has loopback:

- a *fleet*: one process that stands for R responders on the wire. Each has
  its own instance id, its own TCP port and its own cote hello (encoded by
  :mod:`coterie.protocol.packets`, sent every 2 s, cote's default, to
  255.255.255.255), and it advertises ``liveness: ping/1``, so coterie
  requesters treat it as a coterie responder. Its links answer pings with
  pongs. One process, so the machine is not drowned by R discovery sockets;
  what is measured is the requesters, not the fleet;
- the requesters, started together against the same fleet: a coterie
  ``Requester`` (this checkout), optionally the same requester from another
  source tree (``--before-src``, e.g. an older commit exported with
  ``git archive``), and Node cote 1.2.0's ``Requester`` (``interop/peer.js``).
  All use the default discovery settings.

Once every requester is linked to all R responders (coterie: its
``wait_connected``; cote: R ``cote:added`` events) and a warm-up has passed,
each requester's CPU time (``utime + stime`` from ``/proc/<pid>/stat``) is
read over the same window and printed as a percentage of one core.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import sys
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

KEY = "idle-bench"
PORT = 12345  # cote's default discovery port (node-discover's)
HELLO_INTERVAL = 2.0
TICKS = os.sysconf("SC_CLK_TCK")
NODE = "cote 1.2.0"


# -- the fleet ------------------------------------------------------------------


async def fleet(count: int, port: int) -> None:
    """R responders on the wire: hellos, listeners, pongs."""
    from coterie.protocol.framing import FrameDecoder
    from coterie.protocol.liveness import PING, pong_frame
    from coterie.protocol.packets import PacketCodec, make_packet
    from coterie.protocol.pairing import build_advertisement

    pid = str(uuid.uuid4())
    codec = PacketCodec(None, 65_000)
    loop = asyncio.get_running_loop()

    class Link(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport: asyncio.Transport = transport  # type: ignore[assignment]
            self.decoder = FrameDecoder()

        def data_received(self, data: bytes) -> None:
            for frame in self.decoder.feed(data):
                if isinstance(frame, list) and len(frame) == 2 and frame[0] == PING:
                    self.transport.write(pong_frame(frame[1]))

    hellos: list[bytes] = []
    for n in range(count):
        server = await loop.create_server(Link, "127.0.0.1", 0)
        tcp_port = server.sockets[0].getsockname()[1]
        iid = str(uuid.uuid4())
        adv = build_advertisement(
            "rep",
            name=f"fleet-{n}",
            namespace=None,
            key=KEY,
            environment="",
            extra={"respondsTo": ["work"], "liveness": "ping/1", "port": tcp_port},
        )
        data = {
            "isMaster": False,
            "isMasterEligible": False,
            "weight": 0,
            "address": "127.0.0.1",
            "advertisement": adv,
            "id": iid,
            "processId": pid,
            "processCommand": "fleet",
        }
        hellos.append(codec.encode(make_packet("hello", pid, iid, "localhost", data)))
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
    udp.setblocking(False)
    print(json.dumps({"event": "ready", "responders": count}), flush=True)
    step = HELLO_INTERVAL / count  # spread the hellos over the interval
    while True:
        started = loop.time()
        for n, datagram in enumerate(hellos):
            with contextlib.suppress(BlockingIOError):
                udp.sendto(datagram, ("255.255.255.255", port))
            delay = started + (n + 1) * step - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)


# -- a coterie requester -------------------------------------------------------------


async def requester(count: int) -> None:
    """A coterie requester that links to the fleet, says so, then idles."""
    from coterie import DiscoveryOptions, Requester

    if os.environ.get("IDLE_DEBUG"):
        import logging

        logging.basicConfig(level=logging.INFO)
    options = DiscoveryOptions(broadcast="255.255.255.255")
    async with Requester("idle", key=KEY, discovery=options) as req:
        await req.wait_connected(count, timeout=60)
        print(json.dumps({"event": "linked", "count": req.connected}), flush=True)
        await asyncio.Event().wait()


# -- the driver ---------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of ``pid`` so far, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


class Child:
    """A child process speaking JSON lines on stdout."""

    def __init__(self, name: str, proc: asyncio.subprocess.Process) -> None:
        self.name = name
        self.proc = proc

    @classmethod
    async def start(cls, name: str, argv: list[str], env: dict[str, str] | None = None) -> Child:
        """Spawn ``argv`` with ``env`` added to this environment."""
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            env={**os.environ, **(env or {})},
        )
        return cls(name, proc)

    async def until(self, predicate: Any, timeout: float) -> None:
        """Read lines until ``predicate(event)`` holds."""
        assert self.proc.stdout is not None
        async with asyncio.timeout(timeout):
            while True:
                line = await self.proc.stdout.readline()
                if not line:
                    raise RuntimeError(f"{self.name} exited ({self.proc.returncode})")
                with contextlib.suppress(ValueError):
                    if predicate(json.loads(line)):
                        return

    async def drain(self) -> None:
        """Keep reading stdout so the child never blocks on a full pipe."""
        assert self.proc.stdout is not None
        while await self.proc.stdout.readline():
            pass

    async def stop(self) -> None:
        """Kill it and reap it."""
        if self.proc.returncode is None:
            self.proc.kill()
        await self.proc.wait()


SCRIPT = str(Path(__file__).resolve())


async def measure(
    count: int, seconds: float, warmup: float, before_src: str | None, node: bool, src: str | None
) -> None:
    """One measurement with ``count`` responders; prints one JSON line."""
    py, script = sys.executable, SCRIPT
    children: list[Child] = []
    drains: list[asyncio.Task[None]] = []
    try:
        fleet_proc = await Child.start("fleet", [py, script, "fleet", str(count)])
        children.append(fleet_proc)
        await fleet_proc.until(lambda e: e.get("event") == "ready", 60)
        drains.append(asyncio.create_task(fleet_proc.drain()))
        requesters: list[Child] = [
            await Child.start(
                "coterie",
                [py, script, "requester", str(count)],
                env={"PYTHONPATH": src} if src else None,
            )
        ]
        if before_src:
            requesters.append(
                await Child.start(
                    "coterie-before",
                    [py, script, "requester", str(count)],
                    env={"PYTHONPATH": before_src},
                )
            )
        node_config = {"name": "idle", "key": KEY, "quiet": True}
        if node:
            requesters.append(
                await Child.start(
                    NODE,
                    [
                        "node",
                        str(ROOT / "interop" / "peer.js"),
                        "requester",
                        json.dumps(node_config),
                    ],
                )
            )
        children.extend(requesters)
        linked_at = time.monotonic()
        for child in requesters:
            if child.name == NODE:
                added = 0

                def one_more(event: dict[str, Any]) -> bool:
                    nonlocal added
                    added += event.get("event") == "added"
                    return added >= count

                await child.until(one_more, 180)
            else:
                await child.until(lambda e: e.get("event") == "linked", 180)
            drains.append(asyncio.create_task(child.drain()))
        took = time.monotonic() - linked_at
        await asyncio.sleep(warmup)
        start = {c.name: cpu_seconds(c.proc.pid) for c in requesters}
        t0 = time.monotonic()
        await asyncio.sleep(seconds)
        dt = time.monotonic() - t0
        row = {
            c.name: round(100 * (cpu_seconds(c.proc.pid) - start[c.name]) / dt, 2)
            for c in requesters
        }
        fleet_cpu = 100 * cpu_seconds(fleet_proc.proc.pid) / max(time.monotonic() - linked_at, 1)
        print(
            json.dumps(
                {
                    "responders": count,
                    "seconds": round(dt, 1),
                    "idle_cpu_percent_of_a_core": row,
                    "all_linked_within_s": round(took, 1),
                    "fleet_cpu_percent": round(fleet_cpu, 1),
                }
            ),
            flush=True,
        )
    finally:
        for child in children:
            await child.stop()
        for task in drains:
            task.cancel()


def main() -> None:
    """Run a role (``fleet``, ``requester``) or the whole measurement."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="role")
    f = sub.add_parser("fleet")
    f.add_argument("count", type=int)
    r = sub.add_parser("requester")
    r.add_argument("count", type=int)
    parser.add_argument("--responders", type=int, nargs="+", default=[30, 300])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--warmup", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--src", help="the coterie source tree to measure (default: installed)")
    parser.add_argument("--before-src", help="another coterie source tree to measure too")
    parser.add_argument("--no-node", action="store_true", help="leave Node cote out")
    args = parser.parse_args()
    if args.role == "fleet":
        asyncio.run(fleet(args.count, PORT))
        return
    if args.role == "requester":
        asyncio.run(requester(args.count))
        return
    from bench.system import enter_private_netns

    inside, how = enter_private_netns()
    if not inside:
        sys.exit(f"idle_requester: refusing to run outside a private network namespace: {how}")
    print(json.dumps({"network": how}), flush=True)
    for _ in range(args.rounds):
        for count in args.responders:
            asyncio.run(
                measure(
                    count, args.seconds, args.warmup, args.before_src, not args.no_node, args.src
                )
            )


if __name__ == "__main__":
    main()
