"""A peer that never reads cannot grow a link's unsent output without bound (issue 17 item 6).

Real sockets on loopback: the connecting side of a link (what requesters and
subscribers use) against a server that accepts and never reads.
"""

from __future__ import annotations

import asyncio
import logging

import pytest

from coterie.protocol.framing import encode_frame
from coterie.transport.link import HIGH_WATER, Link, connect
from tests.helpers import MS, wait_for

SOON = 5_000 * MS


async def test_a_link_whose_peer_never_reads_is_closed_past_its_bound(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="coterie")
    held: list[asyncio.StreamWriter] = []

    async def deaf(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)  # accept, never read

    server = await asyncio.start_server(deaf, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    closed: list[Link] = []
    link = await connect(
        "127.0.0.1",
        port,
        lambda link, args: None,
        lambda link, exc: closed.append(link),
        max_frame_size=4 * HIGH_WATER,
    )
    try:
        frame = encode_frame([{"type": "big", "data": "x" * 500_000}, "id"])
        written = 0
        for _ in range(200):  # 100 MB, far past the bound
            if not link.writable:
                break
            link.write(frame)
            written += len(frame)
            await asyncio.sleep(0)
        await wait_for(lambda: closed == [link], SOON)
        print(f"\n  a deaf peer: link closed after {written / 1e6:.0f} MB written")
        assert written <= link.max_unsent + 8 * 1024 * 1024  # what the kernel took, at most
        assert "does not read" in caplog.text
        assert sum("does not read" in r.getMessage() for r in caplog.records) == 1
    finally:
        link.abort()
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()
