"""What a listening component accepts from hostile peers is bounded.

Real sockets. The partial-frame attack runs against a responder in its own
process, so its resident memory can be read from /proc.
"""

from __future__ import annotations

import asyncio
import logging
import struct
from typing import Any

import pytest

from coterie import Publisher, Responder
from coterie.protocol.liveness import ping_frame
from coterie.protocol.messages import encode_request
from tests.helpers import MS, DiscoveryFactory, wait_for
from tests.procs import ChildComponent, rss_mib

SOON = 5_000 * MS


async def _open(
    port: int, source: str = "127.0.0.1"
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))


async def _closed_by_peer(reader: asyncio.StreamReader) -> bool:
    try:
        return await asyncio.wait_for(reader.read(1), SOON) == b""
    except ConnectionResetError:
        return True


async def test_links_past_max_connections_are_refused_when_all_are_proven(
    disc: DiscoveryFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="coterie")
    async with Responder("capped", discovery=disc(), max_connections=3, max_per_source=3) as rep:
        rep.on("work", lambda req: "done")
        conns = [await _open(rep.port) for _ in range(3)]
        for i, (reader, writer) in enumerate(conns):
            writer.write(encode_request({"type": "work"}, f"r{i}"))
            assert await asyncio.wait_for(reader.read(64), SOON)  # served: proven
        conns += [await _open(rep.port, "127.0.0.2") for _ in range(2)]
        await wait_for(lambda: rep.refused_connections == 2, SOON)
        assert len(rep.links) == 3 and rep.evicted_connections == 0
        closed = [await _closed_by_peer(r) for r, _ in conns[3:]]
        assert closed == [True, True]
        assert "max_connections is 3" in caplog.text
        for _, w in conns:
            w.close()


async def test_at_the_cap_the_oldest_unproven_link_makes_room(disc: DiscoveryFactory) -> None:
    async with Responder("capped", discovery=disc(), max_connections=3, max_per_source=3) as rep:
        rep.on("work", lambda req: "done")
        proven_r, proven_w = await _open(rep.port)
        proven_w.write(encode_request({"type": "work"}, "r1"))
        assert await asyncio.wait_for(proven_r.read(64), SOON)
        oldest, newer = await _open(rep.port), await _open(rep.port)
        newer[1].write(ping_frame(1))  # a ping is no proof
        await wait_for(lambda: len(rep.links) == 3, SOON)
        newest = await _open(rep.port, "127.0.0.2")
        assert await _closed_by_peer(oldest[0])
        await wait_for(lambda: rep.evicted_connections == 1, SOON)
        assert len(rep.links) == 3 and rep.refused_connections == 0
        for _, w in [(proven_r, proven_w), oldest, newer, newest]:
            w.close()


async def test_one_address_holds_at_most_its_share(disc: DiscoveryFactory) -> None:
    async with Responder("shared", discovery=disc(), max_connections=8) as rep:
        assert rep.max_per_source == 2
        conns = [await _open(rep.port) for _ in range(3)]
        assert await _closed_by_peer(conns[2][0])
        assert rep.refused_connections == 1 and len(rep.links) == 2
        for _, w in conns:
            w.close()


async def test_a_link_that_never_sends_a_frame_is_closed(disc: DiscoveryFactory) -> None:
    async with Responder("strict", discovery=disc(), idle_timeout=200 * MS) as rep:
        (silent_r, silent_w), (talker_r, talker_w) = await _open(rep.port), await _open(rep.port)
        talker_w.write(ping_frame(1))
        assert await asyncio.wait_for(talker_r.read(64), SOON)  # the pong
        assert await _closed_by_peer(silent_r)
        assert rep.idle_closed == 1 and len(rep.links) == 1
        silent_w.close()
        talker_w.close()


async def test_a_publishers_silent_subscribers_are_not_idle(disc: DiscoveryFactory) -> None:
    async with Publisher("news", discovery=disc()) as pub:
        assert pub.idle_timeout is None


async def test_partial_frames_on_many_links_cannot_exhaust_memory(disc_port: int) -> None:
    """60 links each start a 15 MiB frame and never finish it (about 900 MiB)."""
    import dataclasses

    from tests.helpers import fast_discovery

    cfg: dict[str, Any] = {
        "discovery": {
            k: v for k, v in dataclasses.asdict(fast_discovery(disc_port)).items() if v is not None
        }
    }
    child = await ChildComponent.responder("victim", **cfg)
    try:
        port = child.ready["port"]
        before = rss_mib(child.proc.pid)
        header = b"\x11" + struct.pack(">I", 15 * 1024 * 1024)
        chunk = b"j:" + b"[" * (256 * 1024)
        writers = []

        async def attack() -> None:
            _reader, writer = await _open(port)
            writers.append(writer)
            writer.write(header)
            try:
                for _ in range(60):  # 15 MiB, never completed
                    writer.write(chunk)
                    await asyncio.wait_for(writer.drain(), SOON)
            except (ConnectionError, TimeoutError):
                return  # refused: the point

        await asyncio.gather(*(attack() for _ in range(60)), return_exceptions=True)
        grown_mib = rss_mib(child.proc.pid) - before
        # The default budget is 64 MiB of buffered input for the component.
        assert grown_mib < 150, grown_mib
        for writer in writers:
            writer.close()
    finally:
        await child.stop()
