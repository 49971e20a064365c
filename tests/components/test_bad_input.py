"""Hostile and broken input on the discovery port and on a responder's TCP port.

Raw sockets send what no well-behaved peer would: garbage, truncated and
oversized datagrams, datagrams under the wrong discovery key, hellos that lie,
and malformed AMP frames. After each, the node must still serve a normal
request, and a debug line on the ``coterie`` logger must name the peer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest

from coterie import Requester, Responder
from coterie.protocol.framing import FrameDecoder, encode_frame
from coterie.protocol.packets import HELLO, PacketCodec, make_packet
from tests.helpers import HOST_SCOPE, MS, fast_discovery, wait_for

#: The responder's logger.
RLOG = "coterie.responder"
#: Bound for what should happen promptly: a log line, a reply, a closed link.
SOON = 5_000 * MS


@pytest.fixture
def port(disc_port: int) -> int:
    return disc_port


@pytest.fixture(autouse=True)
def debug_logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG, logger="coterie")
    return caplog


def blast(port: int, *datagrams: bytes) -> str:
    """Send raw datagrams to the discovery port in host scope; returns our address."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        s.bind(("127.0.0.1", 0))
        for datagram in datagrams:
            s.sendto(datagram, (HOST_SCOPE, port))
        return "127.0.0.1"


@contextlib.asynccontextmanager
async def service(port: int, **kwargs: Any) -> AsyncIterator[Responder]:
    disc = fast_discovery(port, **kwargs.pop("disc", {}))
    async with Responder("victim", discovery=disc, **kwargs) as rep:
        rep.on("ping", lambda r: "pong")
        yield rep


async def still_serves(port: int, **disc: Any) -> None:
    """A newcomer finds the node and gets an answer: discovery and TCP both work."""
    async with Requester("checker", discovery=fast_discovery(port, **disc)) as req:
        assert await req.send({"type": "ping"}, timeout=SOON) == "pong"


def hello(iid: str, **adv: Any) -> dict[str, Any]:
    advertisement = {"type": "service", "name": "liar", "key": "$$", "axon_type": "rep", **adv}
    data = {"isMaster": False, "isMasterEligible": True, "weight": -0.1,
            "advertisement": advertisement}  # fmt: skip
    return make_packet(HELLO, "liar-pid", iid, "liar-host", data)


# -- discovery port ------------------------------------------------------------

GOOD_HELLO = PacketCodec().encode(hello("some-iid", port=1))
BAD_DATAGRAMS = {
    "garbage": b"\x00\xff\x10\x13garbage\x00",
    "non-json": b"hello, is anybody there?",
    "truncated": GOOD_HELLO[: len(GOOD_HELLO) // 2],
    "json-array": b"[1,2,3]",
    "no-iid": b'{"event":"hello","data":{"advertisement":{}}}',
    "no-advertisement": b'{"event":"hello","iid":"x","data":{}}',
    "wrong-key": PacketCodec("not-the-key").encode(hello("keyed")),
    # The largest datagram IPv4 can carry; whatever is in it, it is not a packet.
    "oversized": b"{" + b"x" * 65506,
}


@pytest.mark.parametrize("case", list(BAD_DATAGRAMS))
async def test_bad_datagrams_are_dropped_and_logged(
    port: int, case: str, debug_logs: pytest.LogCaptureFixture
) -> None:
    async with service(port) as rep:
        assert rep.discovery is not None
        before = dict(rep.discovery.nodes)
        source = blast(port, BAD_DATAGRAMS[case])
        await wait_for(lambda: f"dropped discovery datagram from {source}" in debug_logs.text)
        assert rep.discovery.nodes == before
        await still_serves(port)


async def test_keyed_mesh_drops_plain_and_wrongly_keyed_datagrams(
    port: int, debug_logs: pytest.LogCaptureFixture
) -> None:
    async with service(port, disc={"key": "right"}) as rep:
        blast(
            port,
            PacketCodec().encode(hello("plain")),
            PacketCodec("wrong").encode(hello("wrong")),
            b"\xff\xfe not utf-8",
        )
        await wait_for(lambda: debug_logs.text.count("dropped discovery datagram from") >= 3)
        assert rep.discovery is not None
        assert "plain" not in rep.discovery.nodes and "wrong" not in rep.discovery.nodes
        await still_serves(port, key="right")


async def test_lying_hellos_do_not_break_requesters(
    port: int, debug_logs: pytest.LogCaptureFixture
) -> None:
    # Hellos that pair with requesters but point nowhere useful.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as closed:
        closed.bind(("127.0.0.1", 0))
        dead_port = closed.getsockname()[1]  # bound, never listening: refused
    liars = [
        hello("no-port"),
        hello("bad-port", port="8000"),
        hello("zero-port", port=0),
        hello("dead-port", port=dead_port),
    ]
    async with service(port), Requester("client", discovery=fast_discovery(port)) as req:
        await req.wait_connected(1, timeout=SOON)
        blast(port, *(PacketCodec().encode(p) for p in liars))
        assert req.discovery is not None
        await wait_for(lambda: "no-port" in req.discovery.nodes)  # type: ignore[union-attr]
        results = await asyncio.gather(
            *(req.send({"type": "ping"}, timeout=SOON) for _ in range(20))
        )
        assert results == ["pong"] * 20
        assert req.connected == 1
        # The node that refuses connections is forgotten after one attempt.
        await wait_for(lambda: f"dead-port at 127.0.0.1:{dead_port} failed" in debug_logs.text)
        assert "dead-port" not in req.discovery.nodes


# -- responder TCP port -----------------------------------------------------------


class RawClient:
    """A raw TCP client that speaks (or mangles) AMP."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.decoder = FrameDecoder()
        host, port = writer.get_extra_info("sockname")[:2]
        self.name = f"{host}:{port}"

    @classmethod
    async def connect(cls, port: int) -> RawClient:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def frame(self, timeout: float = SOON) -> list[Any]:
        async with asyncio.timeout(timeout):
            while True:
                frames = self.decoder.feed(await self.reader.read(65536))
                if frames:
                    assert len(frames) == 1
                    frame = frames[0]
                    assert isinstance(frame, list)
                    return frame

    async def closed_by_peer(self, timeout: float = SOON) -> bool:
        try:
            async with asyncio.timeout(timeout):
                return await self.reader.read(65536) == b""
        except ConnectionResetError:
            return True

    def close(self) -> None:
        self.writer.close()


def raw_frame(*args: bytes, first: int | None = None) -> bytes:
    out = bytes([first if first is not None else 0x10 | len(args)])
    for raw in args:
        out += len(raw).to_bytes(4, "big") + raw
    return out


async def test_well_formed_raw_request_is_answered(port: int) -> None:
    async with service(port) as rep:
        client = await RawClient.connect(rep.port)
        try:
            await client.send(encode_frame([{"type": "ping"}, "raw:1"]))
            assert await client.frame() == [None, "pong", "raw:1"]
        finally:
            client.close()


@pytest.mark.parametrize(
    "garbage",
    [
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        raw_frame(b"j:{}", b"s:1", first=0x22),  # AMP version 2
        b"\x00\x00\x00\x00",
        b"\xff" * 64,
    ],
    ids=["http", "bad-version", "zeros", "ff"],
)
async def test_garbage_closes_that_link_only(
    port: int, garbage: bytes, debug_logs: pytest.LogCaptureFixture
) -> None:
    async with service(port) as rep:
        good = await RawClient.connect(rep.port)
        bad = await RawClient.connect(rep.port)
        try:
            await bad.send(garbage)
            assert await bad.closed_by_peer()
            await wait_for(lambda: f"closing link to {bad.name}: not an AMP v1" in debug_logs.text)
            # Another link of the same responder is unaffected.
            await good.send(encode_frame([{"type": "ping"}, "good:1"]))
            assert await good.frame() == [None, "pong", "good:1"]
        finally:
            good.close()
            bad.close()
        await still_serves(port)


async def test_oversized_frame_is_skipped_then_the_link_goes_on(
    port: int, debug_logs: pytest.LogCaptureFixture
) -> None:
    async with service(port, max_frame_size=4096) as rep:
        client = await RawClient.connect(rep.port)
        try:
            big = encode_frame([{"type": "ping", "blob": "x" * 100_000}, "big:1"])
            await client.send(big + encode_frame([{"type": "ping"}, "after:1"]))
            assert await client.frame() == [None, "pong", "after:1"]
            assert f"dropped frame from {client.name}: frame of {len(big)} bytes" in (
                debug_logs.text
            )
        finally:
            client.close()
        await still_serves(port)


@pytest.mark.parametrize(
    ("bad", "log_part"),
    [
        (raw_frame(b"j:{broken", b"s:x:1"), "dropped frame from {peer}: undecodable"),
        (raw_frame(b"s:\xff\xfe", b"s:x:1"), "dropped frame from {peer}: undecodable"),
        (raw_frame(), "dropped frame from {peer}: frame with no arguments"),
        (raw_frame(b"j:{}"), "dropped frame of 1 argument(s) from {peer}"),
    ],
    ids=["bad-json", "bad-utf8", "no-args", "one-arg"],
)
async def test_undecodable_frames_are_dropped_and_logged(
    port: int, bad: bytes, log_part: str, debug_logs: pytest.LogCaptureFixture
) -> None:
    async with service(port) as rep:
        client = await RawClient.connect(rep.port)
        try:
            await client.send(bad + encode_frame([{"type": "ping"}, "after:1"]))
            assert await client.frame() == [None, "pong", "after:1"]
            assert log_part.format(peer=client.name) in debug_logs.text
        finally:
            client.close()


@pytest.mark.parametrize("body", [{"no": "type"}, {"type": 5}], ids=["no-type", "numeric-type"])
async def test_objects_without_a_usable_type_get_error_replies(port: int, body: Any) -> None:
    # Beyond cote (which ignores them): the caller learns at once what to change.
    async with service(port) as rep:
        client = await RawClient.connect(rep.port)
        try:
            await client.send(encode_frame([body, "bad:1"]))
            error, request_id = await client.frame()
            assert request_id == "bad:1"
            assert error["name"] in {"BadRequest", "NoHandlerError"}
            assert error["message"]
        finally:
            client.close()
        await still_serves(port)


@pytest.mark.parametrize(
    "body", [None, "just a string", [1, 2], 7], ids=["null", "string", "list", "number"]
)
async def test_requests_that_are_no_object_are_ignored_with_a_log_line(
    port: int, body: Any, caplog: pytest.LogCaptureFixture
) -> None:
    # cote's send('a string') sends it and cote's responder answers nothing: nor do we.
    async with service(port) as rep:
        client = await RawClient.connect(rep.port)
        try:
            await client.send(encode_frame([body, "bad:1"]) * 20)
            await client.send(encode_frame([{"type": "ping"}, "after:1"]))
            assert await client.frame() == [None, "pong", "after:1"]  # nothing came before
            assert rep.ignored == 20
        finally:
            client.close()
        lines = [r for r in caplog.records if "not an object" in r.getMessage()]
        assert 1 <= len(lines) <= 5, "rate-limited: a burst of 5 lines, then 1 a second"
        assert "send an object with a 'type'" in lines[0].getMessage()
        await still_serves(port)


async def test_truncated_frame_then_hang_up(port: int) -> None:
    async with service(port) as rep:
        client = await RawClient.connect(rep.port)
        frame = encode_frame([{"type": "ping"}, "cut:1"])
        await client.send(frame[: len(frame) // 2])
        client.close()
        await wait_for(lambda: not rep.links, what="the responder closed the cut link")
        await still_serves(port)


async def test_handler_exceptions_are_errors_with_traceback_and_rate_limited(
    port: int, caplog: pytest.LogCaptureFixture
) -> None:
    """Every way a handler can fail reaches the log at ERROR; a flood does not flood it."""

    def broken(req: dict[str, Any]) -> Any:
        raise KeyError("cardno")

    async def broken_async(req: dict[str, Any]) -> Any:
        raise ValueError("bad amount")

    async def broken_later(req: dict[str, Any]) -> Any:
        await asyncio.sleep(0.001)
        raise ZeroDivisionError("no rate")

    async with service(port) as rep:
        rep.on("plain", broken)
        rep.on("eager", broken_async)
        rep.on("waits", broken_later)
        async with Requester("caller", discovery=fast_discovery(port)) as req:
            for kind, name in [("plain", "KeyError"), ("eager", "ValueError"),
                               ("waits", "ZeroDivisionError")]:  # fmt: skip
                caplog.clear()
                with pytest.raises(Exception, match=name):
                    await req.send({"type": kind}, timeout=SOON)
                errors = [
                    r for r in caplog.records if r.levelno == logging.ERROR and r.name == RLOG
                ]
                assert len(errors) == 1, (kind, caplog.text)
                assert repr(kind) in errors[0].getMessage()
                assert errors[0].exc_info is not None
                assert type(errors[0].exc_info[1]).__name__ == name
                assert "Traceback" in caplog.text and "in broken" in caplog.text
            # A flood of bad requests: each is answered, a handful are logged
            # (10 at once, then 1 a second).
            caplog.clear()
            began = asyncio.get_running_loop().time()
            results = await asyncio.gather(
                *(req.send({"type": "plain"}, timeout=SOON) for _ in range(1_000)),
                return_exceptions=True,
            )
            took = asyncio.get_running_loop().time() - began
            assert all("KeyError" in str(r) for r in results)
            errors = [r for r in caplog.records if r.levelno == logging.ERROR and r.name == RLOG]
            print(f"\n  1,000 failing requests in {took:.2f} s: {len(errors)} ERROR lines")
            assert 1 <= len(errors) <= 10 + took + 1
            assert rep.handler_errors == 1_003
