"""Measure what forged namespaces leave running in a Sockend (issue 10, item 5).

A forger announces responders in N namespaces of its own making with plain
hello datagrams (``coterie.protocol.packets``), for a few hello intervals, then
stops. The Sockend starts a requester per namespace it admits. This script
then reports, once the node timeout and a check interval have passed (plus a
margin), how many of those requesters still run and how many hellos per
second still reach the discovery port from anything but the Sockend itself,
counted with a plain UDP socket bound to that port.

Everything stays on this host: as root, the script first moves into a private
network namespace (loopback only, as the test suite does); otherwise it uses
host-scope discovery (127.255.255.255) on a spare port.

Usage, from the repository root (``PYTHONPATH=<src>`` measures another copy
of the package, e.g. the one before the change)::

    .venv/bin/python scripts/sockend_namespace_flood.py [--namespaces 150]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import socket
import sys
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
HOST_SCOPE = "127.255.255.255"


def spare_port(kind: socket.SocketKind) -> int:
    """A port the kernel calls free on loopback now."""
    with socket.socket(socket.AF_INET, kind) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class Counter(asyncio.DatagramProtocol):
    """Every hello on the discovery port: (time, iid, namespace, role)."""

    def __init__(self) -> None:
        from coterie.protocol.packets import PacketCodec

        self.codec = PacketCodec()
        self.hellos: list[tuple[float, str, Any, Any]] = []

    def datagram_received(self, data: bytes, addr: Any) -> None:  # noqa: D102
        try:
            packet = self.codec.decode(data)
        except ValueError:
            return
        if packet["event"] != "hello":
            return
        adv = packet["data"]["advertisement"]
        self.hellos.append(
            (time.monotonic(), packet["iid"], adv.get("namespace"), adv.get("axon_type"))
        )


async def measure(args: argparse.Namespace) -> None:
    """Forge, stop, wait, count; print the figures."""
    from coterie import DiscoveryOptions
    from coterie.gateways.sockend import Sockend
    from coterie.protocol.packets import HELLO, PacketCodec, make_packet

    port = spare_port(socket.SOCK_DGRAM)
    hello, check, timeout = args.hello_interval, args.check_interval, args.node_timeout
    options = DiscoveryOptions(
        port=port,
        broadcast=HOST_SCOPE,
        hello_interval=hello,
        check_interval=check,
        node_timeout=timeout,
        master_timeout=timeout + 1000,
        log=False,
    )
    loop = asyncio.get_running_loop()
    listen = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    listen.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listen.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 * 1024 * 1024)
    listen.bind(("0.0.0.0", port))
    counter = Counter()
    receiver, _ = await loop.create_datagram_endpoint(lambda: counter, sock=listen)
    forger = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    forger.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
    closed_port = spare_port(socket.SOCK_STREAM)  # nothing listens there
    codec = PacketCodec()

    sockend = Sockend(discovery=options)
    await sockend.start()
    key = sockend.advertisement["key"]
    forged = [(str(uuid.uuid4()), f"forged-{i}") for i in range(args.namespaces)]
    forged_ids = {iid for iid, _ in forged}

    def datagram(iid: str, namespace: str) -> bytes:
        adv = {"type": "service", "name": f"forged {namespace}", "namespace": namespace,
               "respondsTo": ["x"], "key": key, "axon_type": "rep",
               "port": closed_port}  # fmt: skip
        data = {"isMaster": False, "isMasterEligible": False, "weight": 0,
                "address": "127.0.0.1", "advertisement": adv, "id": iid,
                "processId": "forger"}  # fmt: skip
        return codec.encode(make_packet(HELLO, "forger", iid, "forger", data))

    def spaces() -> tuple[int, int]:
        all_spaces = list(sockend._spaces.values())
        running = sum(1 for s in all_spaces if s.requester is not None and s.requester._started)
        return len(all_spaces), running

    rounds = max(1, round(args.forge_seconds * 1000 / hello))
    for _ in range(rounds):
        for iid, namespace in forged:
            forger.sendto(datagram(iid, namespace), (HOST_SCOPE, port))
            await asyncio.sleep(0)
        await asyncio.sleep(hello / 1000)
    stopped = time.monotonic()
    peak_spaces, peak_running = spaces()
    settle = (timeout + check) / 1000 + args.margin
    await asyncio.sleep(settle)
    window_start = time.monotonic()
    await asyncio.sleep(args.window)
    window_end = time.monotonic()
    left_spaces, left_running = spaces()
    own = sockend.id
    late = [
        h
        for h in counter.hellos
        if window_start <= h[0] < window_end and h[1] not in forged_ids and h[1] != own
    ]
    by_role: dict[str, int] = {}
    for _, _, _, role in late:
        by_role[str(role)] = by_role.get(str(role), 0) + 1
    print(f"package: {sys.modules['coterie'].__file__}")
    print(
        f"discovery: hello {hello} ms, check {check} ms, node timeout {timeout} ms; "
        f"{args.namespaces} forged namespaces announced for {rounds} hello intervals"
    )
    print(
        f"when the forgeries stopped: {peak_spaces} namespaces, {peak_running} requesters running"
    )
    print(
        f"{settle:.1f} s after they stopped (node timeout + check interval + "
        f"{args.margin:g} s): {left_spaces} namespaces, {left_running} requesters running"
    )
    print(
        f"hellos/s on the discovery port over the next {args.window:g} s, "
        f"the Sockend's own excluded: {len(late) / (window_end - window_start):.1f} "
        f"(by role: {by_role or 'none'})"
    )
    del stopped
    await sockend.close()
    receiver.close()
    forger.close()


def main() -> None:
    """Parse the options, enter a private network namespace if possible, measure."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--namespaces", type=int, default=150)
    parser.add_argument("--hello-interval", type=int, default=2000, help="ms (cote: 2000)")
    parser.add_argument("--check-interval", type=int, default=4000, help="ms (cote: 4000)")
    parser.add_argument("--node-timeout", type=int, default=5000, help="ms (cote: 5000)")
    parser.add_argument("--forge-seconds", type=float, default=6.0)
    parser.add_argument("--margin", type=float, default=2.0, help="seconds")
    parser.add_argument("--window", type=float, default=10.0, help="seconds")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from tests import netns

    if not netns.enter_private_netns():
        print(f"host network namespace ({netns.reason_unavailable}); host scope only")
    os.environ.setdefault("COTE_BROADCAST_ADDRESS", HOST_SCOPE)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(measure(args))


if __name__ == "__main__":
    main()
