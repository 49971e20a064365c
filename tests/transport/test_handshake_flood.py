"""Unfinished TLS handshakes cannot exhaust a responder's memory (issue 17 item 3).

Real sockets on loopback. The responder runs in its own process (its memory
is read from /proc) with a link secret. The attacker opens 1,000 connections
that never send a ClientHello and 200 that send one and stall, from six
addresses standing for hosts of the LAN (each under its share of the link
cap, so the handshake bounds themselves are tried). A legitimate requester
must still be served meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import ssl
from typing import Any

import pytest

from coterie import Requester
from tests.helpers import MS, DiscoveryFactory, fast_discovery
from tests.procs import ChildComponent, rss_mib

SOON = 5_000 * MS
SECRET = "handshake-flood"


def _client_hello() -> bytes:
    """The first flight of a TLS 1.3 client: what a half handshake sends."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ctx.wrap_bio(incoming, outgoing)
    with contextlib.suppress(ssl.SSLWantReadError):
        tls.do_handshake()
    return outgoing.read()


async def _open_many(
    port: int, sources: list[str], per_source: int, hello: bytes | None
) -> list[asyncio.StreamWriter]:
    writers: list[asyncio.StreamWriter] = []

    async def one(source: str) -> None:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))
        except OSError:
            return
        writers.append(writer)
        if hello is not None:
            writer.write(hello)

    for source in sources:
        await asyncio.gather(*(one(source) for _ in range(per_source)))
    return writers


async def test_silent_and_stalled_handshakes_stay_within_a_memory_bound(
    disc_port: int, disc: DiscoveryFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COTERIE_LINK_SECRET", SECRET)
    options = dataclasses.asdict(fast_discovery(disc_port))
    cfg: dict[str, Any] = {"discovery": {k: v for k, v in options.items() if v is not None}}
    child = await ChildComponent.responder("vault", type="work", **cfg)
    writers: list[asyncio.StreamWriter] = []
    try:
        port = child.ready["port"]
        pid = child.proc.pid
        async with Requester("teller", discovery=disc(), secret=SECRET, timeout=SOON) as req:
            assert (await req.send({"type": "work", "n": 0}))["by"] == "vault"
            await asyncio.sleep(200 * MS)
            baseline = rss_mib(pid)
            silent = [f"127.0.0.{i}" for i in range(2, 7)]
            writers += await _open_many(port, silent, 200, None)
            writers += await _open_many(port, ["127.0.0.7"], 200, _client_hello())
            await asyncio.sleep(500 * MS)
            during = rss_mib(pid)
            # A legitimate requester is still served while the attack holds.
            async with Requester("teller 2", discovery=disc(), secret=SECRET, timeout=SOON) as late:
                answer = await late.send({"type": "work", "n": 1}, timeout=2_000 * MS)
            assert answer["by"] == "vault"
            peak = max(during, rss_mib(pid))
            for writer in writers:
                writer.close()
            writers.clear()
            await asyncio.sleep(500 * MS)
            assert (await req.send({"type": "work", "n": 2}))["by"] == "vault"
            after = rss_mib(pid)
        print(
            f"\n  TLS responder RSS: baseline {baseline:.0f} MiB, during 1,000 silent + "
            f"200 half handshakes {peak:.0f} MiB (+{peak - baseline:.0f}), "
            f"after {after:.0f} MiB (+{after - baseline:.0f})"
        )
        assert peak - baseline <= 40, (baseline, peak)
        assert after - baseline <= 10, (baseline, after)
    finally:
        for writer in writers:
            writer.close()
        await child.stop()
