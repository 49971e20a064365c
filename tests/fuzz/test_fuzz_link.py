"""Fuzz: what a TCP peer can send a link, plaintext and behind TLS, without sockets.

A :class:`~coterie.transport.link.Link` is driven through a fake transport
exactly as asyncio drives it (``connection_made``, ``data_received`` per
chunk, ``connection_lost``); behind TLS, asyncio's own ``SSLProtocol`` (the
one a TLS server uses) sits in between. The properties:

- no exception ever leaves ``data_received``: the owner's handler sees only
  lists of arguments, a stream that is not AMP aborts the transport, and a
  handler that raises does not stop the link;
- the bytes a link holds stay under the frame limit plus a length prefix,
  the shared :class:`~coterie.transport.link.Budget` always equals what its
  links hold and never passes its limit, and it is all given back when the
  connection ends;
- the link delivers exactly what a bare :class:`FrameDecoder` fed the same
  chunks returns;
- behind TLS, bytes that are not a valid handshake never reach the link (it
  is not even told of the connection), and the transport is closed on a
  handshake failure; after a real mutual handshake, arbitrary application
  bytes reach the link as they would in plaintext.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from asyncio import sslproto
from typing import Any, cast

from hypothesis import event, given
from hypothesis import strategies as st

from coterie.errors import ProtocolError
from coterie.protocol.framing import DroppedFrame, FrameDecoder, encode_frame
from coterie.tls import TLS, service_dns_name
from coterie.transport.link import Budget, Link
from tests.fuzz import fuzz_settings
from tests.fuzz.test_fuzz_framing import PREFIX, cuts, hostile_streams, mutated

SECRET = "fuzz link secret"
SERVICE = "fuzz service"


class FakeTransport:
    """The transport side a protocol sees: records writes, closes and aborts."""

    def __init__(self) -> None:
        self.written = bytearray()
        self.aborted = False
        self.closed = False
        self.reading = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("192.0.2.9", 40000)}.get(name, default)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        assert not (self.aborted or self.closed), "write after close"
        self.written += data

    def writelines(self, chunks: list[bytes]) -> None:
        for chunk in chunks:
            self.write(chunk)

    def is_closing(self) -> bool:
        return self.aborted or self.closed

    def abort(self) -> None:
        self.aborted = True

    def close(self) -> None:
        self.closed = True

    def _force_close(self, exc: BaseException | None) -> None:
        self.aborted = True

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def get_write_buffer_size(self) -> int:
        return 0

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass


class Owner:
    """The component side of a link: keeps frames, answers some, fails on others."""

    def __init__(self) -> None:
        self.frames: list[list[Any]] = []
        self.bad: list[str] = []
        self.closed: list[Exception | None] = []

    def on_frame(self, link: Link, args: list[Any]) -> None:
        assert isinstance(args, list) and args
        self.frames.append(args)
        if args[0] == "boom":
            raise RuntimeError("a handler that fails")
        if len(self.frames) % 3 == 0:
            link.write(encode_frame(["reply", len(self.frames)]))

    def on_closed(self, link: Link, exc: Exception | None) -> None:
        self.closed.append(exc)

    def link(self, max_frame_size: int, budget: Budget | None = None) -> Link:
        link = Link(self.on_frame, self.on_closed, max_frame_size=max_frame_size, budget=budget)
        link.on_bad_frame = lambda _link, reason: self.bad.append(reason)
        return link


def reference(chunks: list[bytes], max_frame_size: int) -> tuple[list[Any], int, bool]:
    """What a bare decoder gives for the chunks: frames, dropped ones, and whether it broke."""
    decoder = FrameDecoder(max_frame_size)
    frames: list[Any] = []
    dropped = 0
    for chunk in chunks:
        try:
            items = decoder.feed(chunk)
        except ProtocolError:
            return frames, dropped, True
        frames.extend(i for i in items if not isinstance(i, DroppedFrame))
        dropped += sum(isinstance(i, DroppedFrame) for i in items)
        if decoder.broken is not None:
            return frames, dropped, True
    return frames, dropped, False


# -- plaintext --------------------------------------------------------------------------


@fuzz_settings(ci=200)
@given(
    hostile_streams(),
    st.data(),
    st.sampled_from([5, 64, 1024, 16 * 1024 * 1024]),
    st.none() | st.integers(1, 2048),
)
async def test_data_received_with_arbitrary_bytes(
    stream: bytes, data: st.DataObject, max_frame_size: int, budget_limit: int | None
) -> None:
    if data.draw(st.booleans(), label="a frame whose handler raises first"):
        stream = encode_frame(["boom"]) + stream
    chunks = data.draw(cuts(stream), label="chunks")
    owner = Owner()
    budget = Budget(budget_limit) if budget_limit is not None else None
    # Another link holds part of the budget: the limit is shared.
    if budget is not None:
        budget.used = data.draw(st.integers(0, budget.limit), label="held elsewhere")
    elsewhere = budget.used if budget is not None else 0
    link = owner.link(max_frame_size, budget)
    transport = FakeTransport()
    link.connection_made(transport)  # type: ignore[arg-type]
    fed: list[bytes] = []
    for chunk in chunks:
        if transport.is_closing():
            break  # a real transport delivers nothing after abort()
        link.data_received(chunk)
        fed.append(chunk)
        held = link.buffered
        assert held <= max_frame_size + PREFIX - 1
        if budget is not None:
            assert budget.used <= budget.limit
            if not transport.aborted:
                assert budget.used == elsewhere + held
    await asyncio.sleep(0)  # scheduled flushes run
    link.connection_lost(None)
    assert owner.closed == [None]
    if budget is not None:
        assert budget.used == elsewhere
    frames, dropped, broken = reference(fed, max_frame_size)
    budget_refused = budget is not None and budget.refused > 0
    if budget_refused:
        event("closed: over the budget")
        assert transport.aborted
        assert owner.frames == frames[: len(owner.frames)]
    else:
        assert owner.frames == frames
        # Each dropped frame is reported; a break is reported when it ends a
        # read on its own, not when frames came before it in the same read
        # (coterie.transport.link aborts without calling on_bad_frame then).
        assert len(owner.bad) - dropped in ((0, 1) if broken else (0,))
        assert transport.aborted == broken
        event("closed: not AMP" if broken else "stream accepted")
    if len(owner.frames) >= 3 and not transport.aborted:
        assert transport.written  # the replies went out


# -- behind TLS -------------------------------------------------------------------------

_contexts: dict[bool, ssl.SSLContext] = {}


def context(server: bool) -> ssl.SSLContext:
    """One context per side for the whole session (a fresh leaf costs a key pair)."""
    if server not in _contexts:
        _contexts[server] = TLS.from_secret(SECRET, SERVICE, server=server).context
    return _contexts[server]


def tls_server(owner: Link) -> tuple[sslproto.SSLProtocol, FakeTransport, asyncio.Future[None]]:
    loop = asyncio.get_running_loop()
    waiter: asyncio.Future[None] = loop.create_future()
    protocol = sslproto.SSLProtocol(
        loop, owner, context(True), waiter, server_side=True, ssl_handshake_timeout=5
    )
    transport = FakeTransport()
    protocol.connection_made(cast(asyncio.BaseTransport, transport))
    return protocol, transport, waiter


def deliver(protocol: sslproto.SSLProtocol, data: bytes) -> None:
    """Hand bytes to a buffered protocol as the event loop does."""
    view = memoryview(data)
    while view:
        buffer = protocol.get_buffer(len(view))
        n = min(len(buffer), len(view))
        buffer[:n] = view[:n]
        protocol.buffer_updated(n)
        view = view[n:]


def finish(protocol: sslproto.SSLProtocol, waiter: asyncio.Future[None]) -> None:
    protocol.connection_lost(None)
    if waiter.done() and not waiter.cancelled():
        waiter.exception()  # retrieved


_hello: list[bytes] = []


def client_hello(_: object = None) -> bytes:
    """A real ClientHello of a coterie client (made once)."""
    if not _hello:
        client = context(False).wrap_bio(
            ssl.MemoryBIO(), out := ssl.MemoryBIO(), server_hostname=service_dns_name(SERVICE)
        )
        with contextlib.suppress(ssl.SSLWantReadError):
            client.do_handshake()
        _hello.append(out.read())
    return _hello[0]


#: Junk, junk behind a handshake record header, or a real ClientHello damaged.
handshake_bytes = (
    st.binary(max_size=600)
    | st.binary(max_size=300).map(lambda b: b"\x16\x03\x01" + b)
    | st.just(None).map(client_hello).flatmap(mutated)
)


@fuzz_settings(ci=100)
@given(handshake_bytes, st.data())
async def test_tls_handshake_with_arbitrary_bytes_reaches_nothing(
    stream: bytes, data: st.DataObject
) -> None:
    owner = Owner()
    link = owner.link(1024)
    protocol, transport, waiter = tls_server(link)
    try:
        for chunk in data.draw(cuts(stream), label="chunks"):
            if transport.is_closing():
                break
            deliver(protocol, chunk)
        assert link.transport is None, "the link was told of a connection"
        assert owner.frames == []
        if waiter.done():
            exc = waiter.exception()
            assert isinstance(exc, ssl.SSLError | ConnectionError), exc
            assert transport.is_closing()
            event(f"handshake failed: {type(exc).__name__}")
        else:
            event("handshake waiting for more")
    finally:
        finish(protocol, waiter)


def handshake(
    client: ssl.SSLObject,
    to_client: ssl.MemoryBIO,
    from_client: ssl.MemoryBIO,
    protocol: sslproto.SSLProtocol,
    server: FakeTransport,
) -> None:
    """Run a client's handshake against the server protocol until it completes."""
    for _ in range(20):
        try:
            client.do_handshake()
            done = True
        except ssl.SSLWantReadError:
            done = False
        if from_client.pending:
            deliver(protocol, from_client.read())
        if server.written:
            to_client.write(bytes(server.written))
            server.written.clear()
        if done and not from_client.pending:
            return
    raise AssertionError("the handshake did not complete")


@fuzz_settings(ci=30)
@given(hostile_streams(), st.data())
async def test_after_a_real_handshake_arbitrary_bytes_reach_the_link_as_in_plaintext(
    stream: bytes, data: st.DataObject
) -> None:
    owner = Owner()
    link = owner.link(1024)
    protocol, transport, waiter = tls_server(link)
    to_client, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    client = context(False).wrap_bio(
        to_client, out, server_side=False, server_hostname=service_dns_name(SERVICE)
    )
    try:
        handshake(client, to_client, out, protocol, transport)
        await asyncio.sleep(0)
        assert waiter.done() and waiter.exception() is None
        assert link.transport is not None
        chunks = data.draw(cuts(stream), label="chunks")
        fed: list[bytes] = []
        for chunk in chunks:
            if transport.is_closing() or link.closed:
                break
            if not chunk:
                continue
            client.write(chunk)
            deliver(protocol, out.read())
            fed.append(chunk)
            assert link.buffered <= 1024 + PREFIX - 1
        frames, _dropped, broken = reference(fed, 1024)
        assert owner.frames == frames
        event("closed: not AMP" if broken else "stream accepted")
    finally:
        finish(protocol, waiter)
        await asyncio.sleep(0)
