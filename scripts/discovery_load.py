"""Measure discovery's CPU in one process while N nodes say hello (issue 16 item 2).

A generator process announces N nodes the way a mesh does: each node's hello
datagram every ``--hello-interval`` ms, spread evenly, broadcast on loopback
to the discovery port. The nodes are forged but look like real coterie
responders (a full advertisement, a distinct id each); their key pairs with
nothing here, so what is measured is discovery alone: receiving, decoding,
the node table and its checks.

The measured process runs ``--components`` components (Responder, Requester,
Publisher, Subscriber, Responder, ... in turn) that share the discovery
settings. Once every component knows all N nodes, the script reads the
process's CPU time (``resource.getrusage``, all threads) over ``--window``
seconds and prints it as a share of one core, with the nodes each component
knows and how many were removed meanwhile (a flapping mesh removes nodes).

Everything stays on this host: as root, the script first moves into a private
network namespace (loopback only, as the test suite does); otherwise it uses
host-scope discovery (127.255.255.255) on a spare port.

Usage, from the repository root (``PYTHONPATH=<src>`` measures another copy
of the package, e.g. the one before a change)::

    .venv/bin/python scripts/discovery_load.py --nodes 1000 --components 5
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import resource
import socket
import sys
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
HOST_SCOPE = "127.255.255.255"


def spare_port() -> int:
    """A UDP port the kernel calls free on loopback now."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def hellos(count: int) -> list[bytes]:
    """One hello datagram per forged node, shaped like a coterie responder's."""
    from coterie.protocol.packets import HELLO, PacketCodec, make_packet

    codec = PacketCodec()
    out = []
    for n in range(count):
        iid, pid = str(uuid.uuid4()), str(uuid.uuid4())
        adv = {"type": "service", "name": f"load {n}", "namespace": None,
               "key": "$$load-generator", "axon_type": "rep", "port": 20000 + n,
               "respondsTo": ["convert", "rate", "quote"], "liveness": "ping/1"}  # fmt: skip
        data = {"isMaster": False, "isMasterEligible": True, "weight": -0.1764,
                "address": "127.0.0.1", "advertisement": adv, "id": iid,
                "processId": pid, "processCommand": "load/generator.py"}  # fmt: skip
        out.append(codec.encode(make_packet(HELLO, pid, iid, "load-host", data)))
    return out


def generate(args: argparse.Namespace) -> None:
    """The generator process: every node's hello once per interval, evenly spread."""
    datagrams = hellos(args.nodes)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
    destination = (HOST_SCOPE, args.port)
    tick = 0.01
    per_tick = len(datagrams) * tick / (args.hello_interval / 1000)
    # The first round goes out at once, as after a mass restart.
    for data in datagrams:
        sock.sendto(data, destination)
    started = time.monotonic()
    sent, due = 0, 0.0
    while time.monotonic() - started < args.seconds:
        due += per_tick
        while sent < due:
            with contextlib.suppress(BlockingIOError):
                sock.sendto(datagrams[sent % len(datagrams)], destination)
            sent += 1
        time.sleep(max(0.0, started + (sent / per_tick) * tick - time.monotonic()))


async def measure(args: argparse.Namespace) -> None:
    """Start the components and the generator; wait for every node; read the CPU."""
    from coterie import DiscoveryOptions, Publisher, Requester, Responder, Subscriber

    options = DiscoveryOptions(
        port=args.port,
        broadcast=HOST_SCOPE,
        hello_interval=args.hello_interval,
        check_interval=args.check_interval,
        node_timeout=args.node_timeout,
        master_timeout=args.node_timeout + 1000,
        log=False,
    )
    roles: list[Any] = [Responder, Requester, Publisher, Subscriber]
    components = [
        roles[i % len(roles)](f"load {i}", discovery=options) for i in range(args.components)
    ]
    for component in components:
        await component.start()
    removed = 0

    def count(event: str, node: Any) -> None:
        nonlocal removed
        removed += event == "removed"

    for component in components:
        component.discovery.on(count)
    generator = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--generate", "--nodes", str(args.nodes),
        "--port", str(args.port), "--hello-interval", str(args.hello_interval),
        "--seconds", str(args.settle + args.window + 5),
    )  # fmt: skip
    try:
        started = time.monotonic()

        def known() -> int:
            return min(len(c.discovery.nodes) for c in components)

        # Polled: "every component knows N nodes" is no single event.
        while known() < args.nodes and time.monotonic() - started < args.settle:  # noqa: ASYNC110
            await asyncio.sleep(0.1)
        converged = time.monotonic() - started
        await asyncio.sleep(max(0.0, args.settle - converged) if args.full_settle else 1.0)
        removed_before = removed
        usage = resource.getrusage(resource.RUSAGE_SELF)
        user0, sys0, wall0 = usage.ru_utime, usage.ru_stime, time.monotonic()
        await asyncio.sleep(args.window)
        usage = resource.getrusage(resource.RUSAGE_SELF)
        user, system = usage.ru_utime - user0, usage.ru_stime - sys0
        cpu = user + system
        wall = time.monotonic() - wall0
        print(f"package: {sys.modules['coterie'].__file__}")
        print(
            f"{args.nodes} nodes, hello every {args.hello_interval} ms; "
            f"{args.components} component(s) in this process"
        )
        print(
            f"every component knew all nodes after {converged:.1f} s"
            if known() >= args.nodes
            else f"not every component knew all nodes after {converged:.1f} s"
        )
        print(
            f"CPU over {wall:.1f} s: {100 * cpu / wall:.2f} % of a core "
            f"({100 * user / wall:.2f} user, {100 * system / wall:.2f} system); "
            f"nodes known per component: {sorted({len(c.discovery.nodes) for c in components})}; "
            f"removals during the window: {removed - removed_before}"
        )
    finally:
        generator.terminate()
        await generator.wait()
        for component in components:
            await component.close()


def main() -> None:
    """Parse the options, enter a private network namespace if possible, measure."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--components", type=int, default=5)
    parser.add_argument("--hello-interval", type=int, default=2000, help="ms (cote: 2000)")
    parser.add_argument("--check-interval", type=int, default=4000, help="ms (cote: 4000)")
    parser.add_argument("--node-timeout", type=int, default=5000, help="ms (cote: 5000)")
    parser.add_argument("--settle", type=float, default=15.0, help="seconds, at most")
    parser.add_argument("--full-settle", action="store_true", help="wait all of --settle")
    parser.add_argument("--window", type=float, default=20.0, help="seconds")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--seconds", type=float, default=0.0, help=argparse.SUPPRESS)
    parser.add_argument("--generate", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.generate:
        with contextlib.suppress(KeyboardInterrupt):
            generate(args)
        return
    sys.path.insert(0, str(ROOT))
    from tests import netns

    if not netns.enter_private_netns():
        print(f"host network namespace ({netns.reason_unavailable}); host scope only")
    os.environ.setdefault("COTE_BROADCAST_ADDRESS", HOST_SCOPE)
    args.port = args.port or spare_port()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(measure(args))


if __name__ == "__main__":
    main()
