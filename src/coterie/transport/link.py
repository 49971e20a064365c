"""Framed TCP links: the asyncio adapter under every component.

Design: :class:`Link` is an ``asyncio.Protocol`` (callbacks, not streams, to
keep the request path free of task switches). Bytes in go through the
sans-I/O :class:`~coterie.protocol.framing.FrameDecoder`; each frame is handed to the
owner's ``on_frame`` callback. Writes are batched: frames written in one turn
of the event loop leave in a single ``send`` at the end of that turn.

Links enable TCP keepalive with short timers and ``TCP_USER_TIMEOUT`` so a
dead peer is noticed where the OS can tell, long before the discovery
timeout; requesters add application pings for coterie responders
(:mod:`coterie.protocol.liveness`).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Callable
from typing import Any, cast

from coterie.errors import ProtocolError
from coterie.protocol.framing import DEFAULT_MAX_FRAME_SIZE, DroppedFrame, FrameDecoder
from coterie.protocol.handshake import NONCE_SIZE, AuthError, ClientHandshake, ServerHandshake
from coterie.transport.network import DEFAULT_NETWORK, Listener, Network

__all__ = ["FrameHandler", "Link", "LinkClosedHandler", "connect", "serve"]

log = logging.getLogger("coterie.link")

FrameHandler = Callable[["Link", list[Any]], None]
LinkClosedHandler = Callable[["Link", Exception | None], None]

#: Keepalive: first probe after this many idle seconds, then every
#: ``_KEEPINTVL`` seconds, giving up after ``_KEEPCNT`` unanswered probes.
_KEEPIDLE, _KEEPINTVL, _KEEPCNT = 2, 1, 3
#: Data left unacknowledged this long (ms) fails the connection: without it,
#: Linux retransmits for about 15 minutes and sends no keepalive probe while
#: data is in flight, so a partitioned peer with requests queued goes unseen.
_USER_TIMEOUT_MS = 2000


def _tune(sock: socket.socket | None) -> None:
    if sock is None or sock.family not in (socket.AF_INET, socket.AF_INET6):
        return
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        if hasattr(socket, "TCP_KEEPIDLE"):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, _KEEPIDLE)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, _KEEPINTVL)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, _KEEPCNT)
        if hasattr(socket, "TCP_USER_TIMEOUT"):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, _USER_TIMEOUT_MS)
    except OSError as exc:  # pragma: no cover - platform dependent
        log.debug("could not tune socket: %s", exc)


class Link(asyncio.Protocol):
    """One framed TCP connection.

    Args:
        on_frame: Called with ``(link, args)`` for each complete frame.
        on_closed: Called once with ``(link, exc)`` when the connection ends.
        max_frame_size: Larger incoming frames are dropped.
        on_open: Called with the link once it is connected.
    """

    def __init__(
        self,
        on_frame: FrameHandler,
        on_closed: LinkClosedHandler,
        *,
        max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
        on_open: Callable[[Link], None] | None = None,
        handshake: ServerHandshake | ClientHandshake | None = None,
        handshake_timeout: float = 5.0,
    ) -> None:
        self._on_open = on_open
        self._handshake = handshake
        self._handshake_timeout = handshake_timeout
        self._handshake_timer: asyncio.TimerHandle | None = None
        #: Resolves once the link carries frames (after the handshake, if any).
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._on_frame = on_frame
        self._on_closed = on_closed
        self._decoder = FrameDecoder(max_frame_size)
        self.max_frame_size = max_frame_size
        self.transport: asyncio.Transport | None = None
        self.peer = "?"
        self.closed = False
        self._out: list[bytes] = []
        self._flush_scheduled = False
        self._corked = False
        self._loop: asyncio.AbstractEventLoop | None = None
        #: Owner's data: which node this link reaches, its requests in flight.
        self.context: Any = None

    # asyncio.Protocol ------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:  # noqa: D102
        # uvloop's transports do not subclass asyncio.Transport; duck-type.
        self.transport = cast(asyncio.Transport, transport)
        self._loop = asyncio.get_running_loop()
        peer = transport.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
        _tune(transport.get_extra_info("socket"))
        handshake = self._handshake
        if handshake is None:
            self._opened()
            return
        self._handshake_timer = self._loop.call_later(
            self._handshake_timeout, self._fail_handshake, AuthError("handshake timed out")
        )
        if isinstance(handshake, ServerHandshake):
            self.transport.write(handshake.challenge())

    def _opened(self) -> None:
        if self._handshake_timer is not None:
            self._handshake_timer.cancel()
            self._handshake_timer = None
        if not self.ready.done():
            self.ready.set_result(None)
        if self._on_open is not None:
            self._on_open(self)

    def _fail_handshake(self, exc: AuthError) -> None:
        log.warning("link handshake with %s failed: %s", self.peer, exc)
        if not self.ready.done():
            self.ready.set_exception(exc)
            self.ready.exception()  # retrieved: a listening side has no waiter
        self.abort()

    def _authenticate(self, frames: list[list[Any] | DroppedFrame]) -> int:
        """Feed handshake frames; returns how many frames it consumed."""
        handshake = self._handshake
        assert handshake is not None and self.transport is not None
        for index, frame in enumerate(frames):
            if type(frame) is DroppedFrame:
                self._fail_handshake(AuthError(f"bad handshake frame: {frame.reason}"))
                return len(frames)
            try:
                answer = handshake.receive(frame)  # type: ignore[arg-type]
            except AuthError as exc:
                self._fail_handshake(exc)
                return len(frames)
            if answer is not None:
                self.transport.write(answer)
            if handshake.done:
                self._handshake = None
                self._opened()
                return index + 1
        return len(frames)

    def data_received(self, data: bytes) -> None:  # noqa: D102
        try:
            frames = self._decoder.feed(data)
        except ProtocolError as exc:
            log.debug("closing link to %s: %s", self.peer, exc)
            self.abort()
            return
        if self._handshake is not None:
            consumed = self._authenticate(frames)
            frames = frames[consumed:]
            if self.closed or self._handshake is not None:
                return
        on_frame = self._on_frame
        # Cork: replies written while handling this chunk leave in one send.
        self._corked = True
        try:
            for frame in frames:
                if type(frame) is DroppedFrame:
                    log.debug("dropped frame from %s: %s", self.peer, frame.reason)
                    continue
                try:
                    on_frame(self, frame)  # type: ignore[arg-type]
                except Exception:
                    log.exception("error handling a frame from %s", self.peer)
        finally:
            self._corked = False
            if self._out:
                self._flush()
        if self._decoder.broken is not None:
            log.debug("closing link to %s: %s", self.peer, self._decoder.broken)
            self.abort()

    def connection_lost(self, exc: Exception | None) -> None:  # noqa: D102
        if self.closed:
            return
        self.closed = True
        self._out.clear()
        if self._handshake_timer is not None:
            self._handshake_timer.cancel()
        if not self.ready.done():
            self.ready.set_exception(exc or ConnectionResetError("link closed during handshake"))
            self.ready.exception()  # retrieved: nobody may be waiting
        try:
            self._on_closed(self, exc)
        except Exception:
            log.exception("error in close handler of link to %s", self.peer)

    # writing -------------------------------------------------------------

    def write(self, frame: bytes) -> None:
        """Send a frame.

        The first frame in a turn of the event loop leaves at once (lowest
        latency); frames written after it in the same turn are gathered and
        leave together at the end of the turn (fewest system calls).
        """
        if self.closed:
            return
        if self._corked or self._flush_scheduled:
            self._out.append(frame)
            return
        transport = self.transport
        if transport is None:
            return
        transport.write(frame)
        self._flush_scheduled = True
        assert self._loop is not None
        self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        out = self._out
        if not out or self.transport is None or self.closed:
            out.clear()
            return
        data = out[0] if len(out) == 1 else b"".join(out)
        out.clear()
        self.transport.write(data)

    def close(self) -> None:
        """Send what is queued, then close."""
        if self.transport is not None and not self.closed:
            self._flush()
            self.transport.close()

    def abort(self) -> None:
        """Close at once, dropping anything unsent."""
        if self.transport is not None:
            self.transport.abort()


async def connect(
    host: str,
    port: int,
    on_frame: FrameHandler,
    on_closed: LinkClosedHandler,
    *,
    max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
    timeout: float = 5.0,
    secret: str | None = None,
    network: Network = DEFAULT_NETWORK,
) -> Link:
    """Open a link to ``host:port``, authenticated when a ``secret`` is given.

    Raises:
        OSError: When the connection fails.
        AuthError: When the peer fails the handshake.
        TimeoutError: When it takes longer than ``timeout`` seconds.
    """
    async with asyncio.timeout(timeout):
        link = await network.create_connection(
            lambda: Link(
                on_frame,
                on_closed,
                max_frame_size=max_frame_size,
                handshake=ClientHandshake(secret, os.urandom(NONCE_SIZE)) if secret else None,
            ),
            host,
            port,
        )
        assert isinstance(link, Link)
        await link.ready
    return link


async def serve(
    host: str,
    port: int,
    on_frame: FrameHandler,
    on_closed: LinkClosedHandler,
    on_open: Callable[[Link], None] | None = None,
    *,
    max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
    secret: str | None = None,
    network: Network = DEFAULT_NETWORK,
) -> Listener:
    """Listen on ``host:port`` (0 for any free port) and accept links.

    With a ``secret``, each link must pass the handshake of
    :mod:`coterie.protocol.handshake` before ``on_open`` is called and frames flow.
    """
    return await network.create_server(
        lambda: Link(
            on_frame,
            on_closed,
            max_frame_size=max_frame_size,
            on_open=on_open,
            handshake=ServerHandshake(secret, os.urandom(NONCE_SIZE)) if secret else None,
        ),
        host,
        port,
    )
