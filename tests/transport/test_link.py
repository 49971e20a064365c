"""transport.link: one framed TCP connection, over real sockets with a raw peer.

The raw peer (``asyncio.open_connection``) writes bytes exactly as a hostile
or slow peer would: split anywhere, batched, oversized, or not AMP at all.
"""

from __future__ import annotations

import asyncio
import errno
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest

from coterie.protocol.messages import encode_request
from coterie.transport.link import Budget, Link, serve
from coterie.transport.network import TCP, ip_family
from tests.helpers import MS, wait_for

SOON = 2_000 * MS


class Served:
    """A Link server and what its links saw."""

    def __init__(self) -> None:
        self.links: list[Link] = []
        self.frames: list[Any] = []
        self.closed: list[tuple[Link, Exception | None]] = []
        self.bad: list[str] = []
        self.reply = False

    def on_open(self, link: Link) -> None:
        link.on_bad_frame = lambda _link, reason: self.bad.append(reason)
        self.links.append(link)

    def on_frame(self, link: Link, args: list[Any]) -> None:
        if args[0].get("type") == "boom":
            raise RuntimeError("handler bug")
        self.frames.append(args)
        if self.reply:
            link.write(encode_request({"type": "reply", "n": len(self.frames)}, "r"))


@pytest.fixture
async def served() -> AsyncIterator[tuple[Served, int, Budget]]:
    state, budget = Served(), Budget(3000)
    listener = await serve(
        "127.0.0.1", 0, state.on_frame, lambda link, exc: state.closed.append((link, exc)),
        state.on_open, max_frame_size=1000, budget=budget,
    )  # fmt: skip
    yield state, listener.port, budget
    listener.close()
    for link in state.links:
        link.abort()


async def dial(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", port)


def frame(n: int, pad: int = 0) -> bytes:
    return encode_request({"type": "t", "n": n, "pad": "x" * pad}, str(n))


async def test_a_frame_split_byte_by_byte_arrives_once_whole(
    served: tuple[Served, int, Budget],
) -> None:
    state, port, _ = served
    _, writer = await dial(port)
    for byte in frame(1):
        writer.write(bytes([byte]))
        await writer.drain()
    await wait_for(lambda: state.frames, SOON)
    assert state.frames == [[{"type": "t", "n": 1, "pad": ""}, "1"]]
    writer.close()


async def test_frames_in_one_read_are_handled_in_order_and_replies_all_arrive(
    served: tuple[Served, int, Budget],
) -> None:
    state, port, _ = served
    state.reply = True
    reader, writer = await dial(port)
    writer.write(frame(1) + frame(2) + frame(3))
    await writer.drain()
    await wait_for(lambda: len(state.frames) == 3, SOON)
    assert [args[0]["n"] for args in state.frames] == [1, 2, 3]
    want = b"".join(encode_request({"type": "reply", "n": n}, "r") for n in (1, 2, 3))
    async with asyncio.timeout(SOON):
        assert await reader.readexactly(len(want)) == want
    writer.close()


async def test_an_oversized_frame_is_skipped_and_the_link_stays_up(
    served: tuple[Served, int, Budget],
) -> None:
    state, port, _ = served
    _, writer = await dial(port)
    writer.write(frame(1, pad=2000) + frame(2))
    await writer.drain()
    await wait_for(lambda: state.frames, SOON)
    assert [args[0]["n"] for args in state.frames] == [2]
    assert len(state.bad) == 1 and not state.links[0].closed
    writer.close()


async def test_a_handler_exception_does_not_end_the_link(
    served: tuple[Served, int, Budget],
) -> None:
    state, port, _ = served
    _, writer = await dial(port)
    writer.write(encode_request({"type": "boom"}, "1") + frame(2))
    await writer.drain()
    await wait_for(lambda: state.frames, SOON)
    assert [args[0]["n"] for args in state.frames] == [2] and not state.links[0].closed
    writer.close()


async def test_bytes_that_are_not_amp_close_the_link_once(
    served: tuple[Served, int, Budget],
) -> None:
    state, port, _ = served
    reader, writer = await dial(port)
    writer.write(b"GET / HTTP/1.1\r\n\r\n")
    await writer.drain()
    async with asyncio.timeout(SOON):
        assert await reader.read() == b""  # the link closed
    await wait_for(lambda: state.closed, SOON)
    assert len(state.closed) == 1 and state.bad == ["not an AMP v1 frame (first byte 0x47)"]


async def test_links_share_one_input_budget(served: tuple[Served, int, Budget]) -> None:
    state, port, budget = served
    whole = frame(1, pad=900)  # under max_frame_size, so each link may hold most of it
    writers = []
    for _ in range(4):
        _, writer = await dial(port)
        writer.write(whole[:-1])  # a frame that never completes
        await writer.drain()
        writers.append(writer)
    await wait_for(lambda: budget.refused >= 1, SOON)
    assert budget.used <= budget.limit
    assert sum(1 for link in state.links if link.closed) == budget.refused
    for writer in writers:
        writer.close()
    await wait_for(lambda: budget.used == 0, SOON)  # closed links give their bytes back


async def test_close_sends_what_is_queued_then_reports_once(
    served: tuple[Served, int, Budget],
) -> None:
    state, port, _ = served
    reader, writer = await dial(port)
    await wait_for(lambda: state.links, SOON)
    link = state.links[0]
    link.write(frame(1))
    link.write(frame(2))  # same loop turn: queued behind the first
    link.close()
    link.close()
    want = frame(1) + frame(2)
    async with asyncio.timeout(SOON):
        assert await reader.read() == want
    await wait_for(lambda: state.closed, SOON)
    assert state.closed == [(link, None)]
    link.write(frame(3))  # writes after close are dropped, not raised
    writer.close()


async def test_a_listener_binds_an_ip_address_itself_and_a_name_through_the_loop() -> None:
    assert ip_family("0.0.0.0") == ip_family("127.0.0.1") == socket.AF_INET
    assert ip_family("::") == ip_family("::1") == socket.AF_INET6
    for not_bound_here in ("localhost", "", "fe80::1%lo", "010.0.0.1"):
        assert ip_family(not_bound_here) is None
    for host in ("127.0.0.1", "localhost"):
        listener = await TCP.create_server(asyncio.Protocol, host, 0)
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", listener.port)
            writer.close()
            # Taken, as the loop says it: EADDRINUSE.
            with pytest.raises(OSError) as taken:
                await TCP.create_server(asyncio.Protocol, "127.0.0.1", listener.port)
            assert taken.value.errno == errno.EADDRINUSE
        finally:
            listener.close()
            await listener.wait_closed()
