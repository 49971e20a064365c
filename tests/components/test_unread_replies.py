"""A client that never reads its replies cannot grow a responder's memory (issue 17 item 6).

Real sockets on loopback. The responder runs in its own process, so its
resident memory can be read from /proc. The attacker connects with a plain
socket, writes requests and never reads a byte. A legitimate requester
keeps working meanwhile.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import socket
import sys
from typing import Any

import pytest

from coterie import Requester
from coterie.protocol.messages import encode_request
from tests.helpers import MS, DiscoveryFactory, fast_discovery
from tests.procs import rss_mib

SOON = 5_000 * MS
MIB = 1024 * 1024

#: A responder with a 1 MiB answer (async handler) and an echo (plain handler).
VICTIM = r"""
import asyncio, json, sys
from coterie import Responder, DiscoveryOptions
cfg = json.loads(sys.argv[1])
BIG = "x" * (1024 * 1024)
async def main():
    async with Responder("victim", discovery=DiscoveryOptions(**cfg["discovery"])) as r:
        async def big(req):
            return BIG
        r.on("big", big)
        r.on("echo", lambda req: req.get("data"))
        r.on("work", lambda req: req.get("n"))
        print(json.dumps({"port": r.port}), flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
asyncio.run(main())
"""


async def _start_victim(disc_port: int) -> tuple[asyncio.subprocess.Process, int]:
    options = dataclasses.asdict(fast_discovery(disc_port))
    cfg = {"discovery": {k: v for k, v in options.items() if v is not None}}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        VICTIM,
        json.dumps(cfg),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        env=dict(os.environ),
    )
    assert proc.stdout is not None
    async with asyncio.timeout(20_000 * MS):
        line = await proc.stdout.readline()
    return proc, json.loads(line)["port"]


def _deaf_socket(port: int) -> socket.socket:
    """A client socket that never reads, with a small receive window."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    sock.connect(("127.0.0.1", port))
    sock.setblocking(False)
    return sock


async def _send_all(sock: socket.socket, data: bytes, seconds: float) -> int:
    """Write as much of ``data`` as the peer takes within ``seconds``; read nothing."""
    _, writer = await asyncio.open_connection(sock=sock)
    sent = 0
    try:
        async with asyncio.timeout(seconds):
            while sent < len(data):
                writer.write(data[sent : sent + 256 * 1024])
                await writer.drain()
                sent += min(256 * 1024, len(data) - sent)
    except (TimeoutError, OSError):
        pass
    return sent - writer.transport.get_write_buffer_size()


async def _throughput(req: Requester, seconds: float) -> int:
    loop = asyncio.get_running_loop()
    stop = loop.time() + seconds
    done = 0

    async def worker() -> None:
        nonlocal done
        while loop.time() < stop:
            await req.send({"type": "work", "n": done}, timeout=SOON)
            done += 1

    await asyncio.gather(*(worker() for _ in range(20)))
    return done


ATTACKS: dict[str, Any] = {
    # 400 requests for 1 MiB answers each, in one write.
    "400 x 1 MiB answers": lambda: b"".join(
        encode_request({"type": "big"}, f"r{i}") for i in range(400)
    ),
    # 60 KB in, 60 KB out, 2,000 times (120 MB of answers).
    "60 KB echo": lambda: b"".join(
        encode_request({"type": "echo", "data": "e" * 60_000}, f"e{i}") for i in range(2_000)
    ),
}


@pytest.mark.parametrize("attack", list(ATTACKS))
async def test_a_client_that_never_reads_cannot_grow_the_responders_memory(
    disc_port: int, disc: DiscoveryFactory, attack: str
) -> None:
    proc, port = await _start_victim(disc_port)
    deaf: socket.socket | None = None
    try:
        async with Requester("legit", discovery=disc(), timeout=SOON) as req:
            assert await req.send({"type": "work", "n": 1}) == 1
            await asyncio.sleep(200 * MS)
            baseline = rss_mib(proc.pid)
            alone = await _throughput(req, 1.0)
            samples = [baseline]

            async def sample() -> None:
                while True:
                    samples.append(rss_mib(proc.pid))
                    await asyncio.sleep(20 * MS)

            sampler = asyncio.create_task(sample())
            deaf = _deaf_socket(port)
            sent = await _send_all(deaf, ATTACKS[attack](), 1_500 * MS)
            attacked = await _throughput(req, 1.0)
            sampler.cancel()
            peak = max(samples)
        print(
            f"\n  {attack}: attacker wrote {sent / 1000:.0f} kB; responder RSS "
            f"{baseline:.0f} -> {peak:.0f} MiB (+{peak - baseline:.0f}); legit requests "
            f"{alone}/s alone, {attacked}/s under attack ({attacked / alone:.2f}x)"
        )
        assert peak - baseline <= 40, (baseline, peak)
        assert attacked > 0
        if attack == "60 KB echo":
            # Backpressure: the responder stopped reading the deaf client's
            # requests (it took all 120 MB of them before; without the pause,
            # only the unsent bound would close the link, after about 26 MB).
            assert sent < 20_000_000, sent
    finally:
        if deaf is not None:
            deaf.close()
        assert proc.stdin is not None
        proc.stdin.close()
        try:
            async with asyncio.timeout(10_000 * MS):
                await proc.wait()
        except TimeoutError:
            proc.kill()
            await proc.wait()
