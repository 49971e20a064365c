"""The reconnect burst: ``python -m bench reconnect [--nodes 300] [--down 3.0]``.

Design: N Redis discovery transports (one per node, as N processes would
hold) subscribe through a counting TCP proxy on loopback to a real
redis-server on loopback. The proxy then plays a Redis restart: it drops
every connection and stops listening for ``--down`` seconds (connections are
refused meanwhile, as from a restarted server), then listens again. It
records the time of every connection accepted after it came back, and the
report gives them per 100 ms window: the peak (the most connections in one
window), the spread (first to last reconnection) and the windows used.
With a back-off that doubles in lockstep every node retries at the same
instants, so the whole mesh lands in one or two windows; with full jitter
the retries spread over the last back-off step.

Only loopback is used; the count of nodes and every wait are bounded.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from bench.proc import BenchError

#: Width of one counting window, in seconds.
WINDOW = 0.1
#: Most nodes the bench accepts (each holds two connections, relayed twice).
MOST_NODES = 1000


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Proxy:
    """A TCP relay to ``upstream`` that can play a restart and counts accepts."""

    def __init__(self, upstream: int) -> None:
        self.upstream = upstream
        self.port = _free_port()
        self.accepted: list[float] = []
        #: Set when ``expected`` connections were accepted since the last clear.
        self.expected = 0
        self.all_back = asyncio.Event()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def listen(self) -> None:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", self.port)

    async def drop(self) -> None:
        """Stop listening and cut every connection: the server went away."""
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted.append(asyncio.get_running_loop().time())
        if self.expected and len(self.accepted) >= self.expected:
            self.all_back.set()
        self._writers.add(writer)
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream)
        except OSError:
            writer.transport.abort()
            return
        self._writers.add(up_writer)

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(Exception):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.transport.abort()

        await asyncio.gather(pump(reader, up_writer), pump(up_reader, writer))
        self._writers.discard(writer)
        self._writers.discard(up_writer)


def windows(times: list[float], start: float) -> dict[str, Any]:
    """Peak, spread and windows used of the connection times after ``start``."""
    if not times:
        return {"connections": 0, "peak": 0, "spread_ms": 0.0, "windows": 0}
    counts = Counter(int((t - start) / WINDOW) for t in times)
    return {
        "connections": len(times),
        "peak": max(counts.values()),
        "spread_ms": round((max(times) - min(times)) * 1000, 1),
        "windows": len(counts),
        "first_ms": round((min(times) - start) * 1000, 1),
    }


async def burst(redis_port: int, nodes: int, down: float, settle: float) -> dict[str, Any]:
    """Run N transports through the proxy, play one restart, measure the reconnections."""
    from coterie.discovery.options import DiscoveryOptions
    from coterie.discovery.redis import RedisTransport

    proxy = Proxy(redis_port)
    await proxy.listen()
    settings = DiscoveryOptions(redis=f"redis://127.0.0.1:{proxy.port}").resolve({})
    transports = [RedisTransport(settings) for _ in range(nodes)]
    loop = asyncio.get_running_loop()
    try:
        await asyncio.wait_for(
            asyncio.gather(*(t.start(lambda _d, _a: None) for t in transports)), 60
        )
        await asyncio.sleep(settle)
        await proxy.drop()
        await asyncio.sleep(down)
        back = loop.time()
        proxy.accepted.clear()
        proxy.expected = nodes  # one subscription each
        await proxy.listen()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(proxy.all_back.wait(), 30)
        await asyncio.sleep(0.5)  # late connections (the publishers') are counted too
        result = windows(proxy.accepted, back)
        result["reconnected"] = sum(1 for t in transports if t.reconnects)
        result["recovered_ms"] = round((loop.time() - back - 0.5) * 1000, 1)
        return result
    finally:
        await asyncio.wait_for(asyncio.gather(*(t.close() for t in transports)), 30)
        await proxy.drop()


def main(argv: list[str] | None = None) -> int:
    """Run the reconnect burst against a redis-server on loopback; print the numbers."""
    parser = argparse.ArgumentParser(prog="python -m bench reconnect", description=__doc__)
    parser.add_argument("--nodes", type=int, default=300)
    parser.add_argument("--down", type=float, default=3.0, help="seconds the server is away")
    parser.add_argument("--settle", type=float, default=1.0)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    if not 1 <= args.nodes <= MOST_NODES:
        parser.error(f"--nodes must be 1 to {MOST_NODES}")
    if not 0 < args.down <= 30:
        parser.error("--down must be within (0, 30] seconds")
    os.environ["COTE_BROADCAST_ADDRESS"] = "127.255.255.255"
    binary = shutil.which("redis-server")
    if binary is None:
        raise BenchError("redis-server is not installed")
    port = _free_port()
    server = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--maxclients", "4000"],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise BenchError("redis-server did not listen within 10 s") from None
                time.sleep(0.01)
        result = asyncio.run(burst(port, args.nodes, args.down, args.settle))
    finally:
        server.terminate()
        server.wait(timeout=10)
    result = {"nodes": args.nodes, "down_s": args.down, "window_ms": WINDOW * 1000, **result}
    print(json.dumps(result))
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
