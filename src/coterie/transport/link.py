"""Framed TCP links: the asyncio adapter under every component.

Design: :class:`Link` is an ``asyncio.Protocol`` (callbacks, not streams, to
keep the request path free of task switches). Bytes in go through the
sans-I/O :class:`~coterie.protocol.framing.FrameDecoder`; each frame is handed to the
owner's ``on_frame`` callback. Writes are batched: frames written in one turn
of the event loop leave in a single ``send`` at the end of that turn.

Links enable TCP keepalive with short timers and ``TCP_USER_TIMEOUT`` so a
dead peer is noticed where the OS can tell: a link with unacknowledged data
within about 2 s, an idle one within about 5 s (2 s idle, then 3 probes 1 s
apart), as long as discovery's node timeout at cote's defaults; requesters add
application pings for coterie responders
(:mod:`coterie.protocol.liveness`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
from collections.abc import Callable
from typing import Any, cast

from coterie._logbudget import LogBudget
from coterie.errors import AuthError, ProtocolError
from coterie.protocol.framing import DEFAULT_MAX_FRAME_SIZE, DroppedFrame, FrameDecoder
from coterie.tls import TLS, service_dns_name
from coterie.transport.network import TCP, HandshakeGate, LinkNetwork, Listener

__all__ = ["Budget", "FrameHandler", "Link", "LinkClosedHandler", "connect", "serve"]

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


#: Unsent bytes past which a serving link stops handling its peer's requests
#: until the peer reads (the transport's high-water mark).
HIGH_WATER = 1024 * 1024
#: Unsent bytes past which a link is closed: besides its largest frame, only
#: a peer that does not read leaves this much behind.
MAX_UNSENT_MARGIN = HIGH_WATER

_closing_log = LogBudget(log)


class Budget:
    """Bytes that the links of one component may hold buffered, all together.

    ``max_frame_size`` bounds one frame on one link; without a shared budget,
    many links each holding a large partial frame add up without bound. A
    link whose data would take the total past ``limit`` is closed with one
    log line naming the peer. Both directions count: partial input, and
    output its peer has not read yet.

    Args:
        limit: Most bytes buffered across the links sharing this budget.
    """

    __slots__ = ("limit", "refused", "used")

    def __init__(self, limit: int) -> None:
        if limit <= 0:
            raise ValueError(f"a buffer budget must be positive, got {limit}")
        self.limit = limit
        self.used = 0
        #: Links closed for going over the budget.
        self.refused = 0


class Link(asyncio.Protocol):
    """One framed TCP connection.

    Args:
        on_frame: Called with ``(link, args)`` for each complete frame.
        on_closed: Called once with ``(link, exc)`` when the connection ends.
        max_frame_size: Larger incoming frames are dropped.
        on_open: Called with the link once it is connected.
        budget: A :class:`Budget` shared with the owner's other links.
        backpressure: Stop handling frames while the peer does not read
            what they produce (the serving side: responders).

    Output is bounded on every link: past :data:`HIGH_WATER` unsent bytes a
    serving link stops handling its peer's requests (and reading its
    socket) until the peer drains; a link with more than ``max_frame_size``
    plus :data:`MAX_UNSENT_MARGIN` bytes unsent, or that takes its budget
    past its limit, is closed with one warning naming the peer.
    """

    def __init__(
        self,
        on_frame: FrameHandler,
        on_closed: LinkClosedHandler,
        *,
        max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
        on_open: Callable[[Link], None] | None = None,
        budget: Budget | None = None,
        backpressure: bool = False,
    ) -> None:
        self._on_open = on_open
        self._backpressure = backpressure
        #: Frames decoded but not handled yet, while the peer does not read.
        self._held: list[Any] = []
        self._writing_paused = False
        self._out_bytes = 0
        self._counted_out = 0
        #: Unsent bytes past which the link is closed.
        self.max_unsent = max_frame_size + MAX_UNSENT_MARGIN
        self._budget = budget
        self._counted = 0
        #: Frames received so far (a link that never sends one never identified).
        self.frames = 0
        #: ``loop.time()`` when the connection was made.
        self.opened_at = 0.0
        #: ``loop.time()`` when bytes last arrived (discovery counts them as a
        #: sign of life of the node at the other end).
        self.heard_at = 0.0
        #: The peer ended the stream (end of file): it closed the link on purpose.
        self.ended_by_peer = False
        self._on_frame = on_frame
        self._on_closed = on_closed
        self._decoder = FrameDecoder(max_frame_size)
        self.max_frame_size = max_frame_size
        self.transport: asyncio.Transport | None = None
        self.peer = "?"
        #: The peer's address without its port: whose share of the link cap it uses.
        self.source = "?"
        #: Whether the owner saw it do real work (see :mod:`coterie.protocol.admission`).
        self.proven = False
        #: Set while a listener holds the connection before its TLS handshake:
        #: :meth:`abort` calls it to drop the connection.
        self.cancel_pending: Callable[[], None] | None = None
        self.closed = False
        #: False once it is closing or closed: what is written now is dropped.
        self.writable = True
        self._out: list[bytes] = []
        self._flush_scheduled = False
        self._corked = False
        self._loop: asyncio.AbstractEventLoop | None = None
        #: Owner's data: which node this link reaches, its requests in flight.
        self.context: Any = None
        #: Called with ``(link, reason)`` for each frame that could not be
        #: decoded (the frame is skipped; the link stays up).
        self.on_bad_frame: Callable[[Link, str], None] | None = None

    # asyncio.Protocol ------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:  # noqa: D102
        # uvloop's transports do not subclass asyncio.Transport; duck-type.
        self.transport = cast(asyncio.Transport, transport)
        self._loop = asyncio.get_running_loop()
        self.cancel_pending = None
        self.named(transport.get_extra_info("peername"))
        _tune(transport.get_extra_info("socket"))
        with contextlib.suppress(NotImplementedError, AttributeError):
            self.transport.set_write_buffer_limits(high=HIGH_WATER)
        self.opened_at = self._loop.time()
        if self._on_open is not None:
            self._on_open(self)

    @property
    def buffered(self) -> int:
        """Bytes received and held waiting for the rest of a frame.

        Bounded by ``max_frame_size`` (plus part of a length prefix): an
        oversized frame is skipped as it arrives, never held.
        """
        return self._decoder.buffered

    def named(self, address: Any) -> None:
        """Set :attr:`peer` and :attr:`source` from a socket address."""
        if isinstance(address, tuple):
            self.source = str(address[0])
            self.peer = f"{address[0]}:{address[1]}"
        else:
            self.source = self.peer = str(address)

    def data_received(self, data: bytes) -> None:  # noqa: D102
        self.heard_at = self._loop.time()  # type: ignore[union-attr]  # set on connection
        budget = self._budget
        if budget is not None and budget.used + len(data) > budget.limit:
            # Account before decoding: the decoder may hold all of this.
            buffered = self._decoder.buffered + len(data)
            if budget.used - self._counted + buffered > budget.limit:
                budget.refused += 1
                log.warning(
                    "closing link from %s: it would take buffered input to %d bytes, "
                    "past this component's budget of %d",
                    self.peer,
                    budget.used - self._counted + buffered,
                    budget.limit,
                )
                self.abort()
                return
        try:
            frames = self._decoder.feed(data)
        except ProtocolError as exc:
            log.debug("closing link to %s: %s", self.peer, exc)
            if self.on_bad_frame is not None:
                self.on_bad_frame(self, str(exc))
            self.abort()
            return
        if budget is not None:
            held = self._decoder.buffered
            budget.used += held - self._counted
            self._counted = held
        self.frames += len(frames)
        self._dispatch(frames)
        if self._decoder.broken is not None:
            log.debug("closing link to %s: %s", self.peer, self._decoder.broken)
            if self.on_bad_frame is not None:
                self.on_bad_frame(self, str(self._decoder.broken))
            self.abort()

    def _dispatch(self, frames: list[Any]) -> None:
        on_frame = self._on_frame
        # Cork: replies written while handling this chunk leave in one send.
        self._corked = True
        try:
            rest = iter(frames)
            for frame in rest:
                if type(frame) is DroppedFrame:
                    log.debug("dropped frame from %s: %s", self.peer, frame.reason)
                    if self.on_bad_frame is not None:
                        self.on_bad_frame(self, frame.reason)
                    continue
                try:
                    on_frame(self, frame)
                except Exception:
                    log.exception("error handling a frame from %s", self.peer)
                if self._writing_paused and self._backpressure:
                    self._hold(list(rest))
                    break
        finally:
            self._corked = False
            if self._out:
                self._flush()

    def _hold(self, frames: list[Any]) -> None:
        """The peer reads slower than its requests produce: handle no more until it drains."""
        self._held.extend(frames)
        if self.transport is not None:
            self.transport.pause_reading()

    def pause_writing(self) -> None:
        """More than :data:`HIGH_WATER` bytes are unsent (called by the transport)."""
        self._writing_paused = True
        if self._backpressure and self.transport is not None:
            self.transport.pause_reading()
        self._check_unsent()

    def resume_writing(self) -> None:
        """The peer drained what was unsent (called by the transport)."""
        self._writing_paused = False
        if self.transport is None or self.closed:
            return
        self._check_unsent()
        if self._held:
            frames, self._held = self._held, []
            self._dispatch(frames)
        if not self._held and not self._writing_paused and self._backpressure:
            self.transport.resume_reading()

    def _check_unsent(self) -> None:
        """Count unsent output toward the budget; close a link whose peer does not read."""
        transport = self.transport
        if transport is None or self.closed:
            return
        size = transport.get_write_buffer_size()
        budget = self._budget
        if budget is not None:
            budget.used += size - self._counted_out
            self._counted_out = size
        if size > self.max_unsent or (budget is not None and budget.used > budget.limit):
            if budget is not None:
                budget.refused += 1
            _closing_log.warning(
                "closing link to %s: its peer does not read; %d bytes unsent (at most %d "
                "per link; %d of this component's budget of %d used)",
                self.peer,
                size,
                self.max_unsent,
                budget.used if budget is not None else size,
                budget.limit if budget is not None else self.max_unsent,
            )
            self.abort()

    def eof_received(self) -> bool | None:  # noqa: D102
        self.ended_by_peer = True
        return None  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:  # noqa: D102
        if self.closed:
            return
        self.closed = True
        self.writable = False
        self._out.clear()
        self._held.clear()
        if self._budget is not None:
            self._budget.used -= self._counted + self._counted_out
            self._counted = self._counted_out = 0
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
        if not self.writable:
            return
        if self._corked or self._flush_scheduled:
            self._out.append(frame)
            self._out_bytes += len(frame)
            if self._out_bytes > HIGH_WATER:  # the transport's flow control decides from here
                self._flush()
            return
        transport = self.transport
        if transport is None:
            return
        transport.write(frame)
        if self._writing_paused:
            self._check_unsent()
        self._flush_scheduled = True
        assert self._loop is not None
        self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        out = self._out
        if not out or self.transport is None or self.closed:
            out.clear()
            self._out_bytes = 0
            return
        data = out[0] if len(out) == 1 else b"".join(out)
        out.clear()
        self._out_bytes = 0
        self.transport.write(data)
        if self._writing_paused:
            self._check_unsent()

    def close(self) -> None:
        """Send what is queued, then close."""
        if self.transport is not None and not self.closed:
            self._flush()
            self.writable = False
            self.transport.close()

    def abort(self) -> None:
        """Close at once, dropping anything unsent."""
        self.writable = False
        if self.transport is not None:
            self.transport.abort()
        elif self.cancel_pending is not None:
            cancel, self.cancel_pending = self.cancel_pending, None
            cancel()


async def connect(
    host: str,
    port: int,
    on_frame: FrameHandler,
    on_closed: LinkClosedHandler,
    *,
    max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
    timeout: float = 5.0,
    tls: TLS | None = None,
    server_name: str | None = None,
    network: LinkNetwork = TCP,
) -> Link:
    """Open a link to ``host:port``, over mutual TLS when ``tls`` is given.

    Args:
        host: Address or host name to connect to.
        port: TCP port.
        on_frame: Called with ``(link, args)`` per frame.
        on_closed: Called once when the link ends.
        max_frame_size: Larger incoming frames are dropped.
        timeout: Seconds for the connection and the TLS handshake together.
        tls: The connecting side's TLS (:mod:`coterie.tls`).
        server_name: The service the peer announced: its certificate must
            carry :func:`coterie.tls.service_dns_name` of it.
        network: Where to connect (:mod:`coterie.transport.network`).

    Raises:
        OSError: When the connection fails.
        AuthError: When the peer fails TLS verification.
        TimeoutError: When it takes longer than ``timeout`` seconds.
    """
    hostname = None
    if tls is not None:
        tls.refresh()  # a certificate due for renewal, or files rotated: before the handshake
        if tls.checks_names:
            hostname = service_dns_name(server_name or "")
    try:
        async with asyncio.timeout(timeout):
            link = await network.create_connection(
                lambda: Link(on_frame, on_closed, max_frame_size=max_frame_size),
                host,
                port,
                ssl=tls.context if tls is not None else None,
                server_hostname=hostname,
            )
    except ssl.SSLError as exc:
        raise AuthError(f"TLS with {host}:{port} failed: {exc}") from exc
    assert isinstance(link, Link)
    return link


async def serve(
    host: str,
    port: int,
    on_frame: FrameHandler,
    on_closed: LinkClosedHandler,
    on_open: Callable[[Link], None] | None = None,
    *,
    max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
    tls: TLS | None = None,
    network: LinkNetwork = TCP,
    budget: Budget | None = None,
    gate: HandshakeGate | None = None,
) -> Listener:
    """Listen on ``host:port`` (0 for any free port) and accept links.

    With ``tls``, each connection must complete mutual TLS (a client
    certificate that chains to the CA) before ``on_open`` is called; ``gate``
    then admits each connection before its handshake and says when the
    handshake may start (:class:`~coterie.transport.network.HandshakeGate`).
    Each accepted connection first lets ``tls`` renew or reload its
    certificate (:meth:`coterie.tls.TLS.refresh`).
    """

    def accepted() -> Link:
        # Called as a connection arrives, before its handshake starts: the
        # certificate is renewed or reloaded here when it is time.
        if tls is not None:
            tls.refresh()
        return Link(
            on_frame,
            on_closed,
            max_frame_size=max_frame_size,
            on_open=on_open,
            budget=budget,
            backpressure=True,
        )

    return await network.create_server(
        accepted,
        host,
        port,
        ssl=tls.context if tls is not None else None,
        gate=gate,
    )
