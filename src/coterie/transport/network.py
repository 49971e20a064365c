"""The network seam, links side: where links get their bytes moved.

Internal. The whole seam, this plus the discovery medium, is
:class:`coterie.discovery.network.Network`, which :mod:`coterie.testing`
implements; links need only the part defined here (:class:`LinkNetwork`), so
this layer knows nothing of discovery.

Design (after httpx's transport seam): every component reaches the network
through one object with asyncio's own shapes, so a test can swap TCP and UDP
for an in-process medium and keep every other line of coterie, framing and
routing included, unchanged:

- :meth:`LinkNetwork.create_server` and :meth:`LinkNetwork.create_connection`
  take an ``asyncio.Protocol`` factory, as the event loop's methods do; the
  links of :mod:`coterie.transport.link` are such protocols;
- ``discovery_transport`` (in :mod:`coterie.discovery.network`) gives the
  discovery medium.

:class:`TcpNetwork` (:data:`TCP`) is the links' default: real TCP sockets.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import select
import socket
from collections.abc import Callable
from ssl import SSLContext
from typing import Protocol

from coterie.transport.timer import Alarm

__all__ = [
    "TCP",
    "HandshakeGate",
    "LinkNetwork",
    "Listener",
    "ProtocolFactory",
    "TcpNetwork",
    "ip_family",
]

log = logging.getLogger("coterie.link")

ProtocolFactory = Callable[[], asyncio.Protocol]

#: Seconds a TLS handshake may take before the connection is dropped.
TLS_HANDSHAKE_TIMEOUT = 5.0
#: The listen backlog of a plain listener (``loop.create_server``'s default).
LISTEN_BACKLOG = 100


def ip_family(host: str) -> socket.AddressFamily | None:
    """``AF_INET`` or ``AF_INET6`` when ``host`` is an IP address, else ``None``.

    Only what binds without a lookup: dotted IPv4 and unscoped IPv6.
    """
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, host)
        except (OSError, ValueError):
            continue
        return family
    return None


class HandshakeGate(Protocol):
    """Who may hold a connection before its TLS handshake, and when it may start it.

    A TLS listener with a gate accepts a connection as a bare socket, asks
    :meth:`arrived` whether it may stay, waits for its first bytes (a
    connection that sends nothing holds no TLS state), and starts its
    handshake when :meth:`want_handshake` says so, or later when the gate
    calls the ``start`` callback of :meth:`arrived` for it.
    """

    def arrived(
        self, protocol: asyncio.Protocol, address: object, start: Callable[[], None]
    ) -> bool:
        """A connection from ``address`` arrived for ``protocol``: may it stay?

        ``start`` begins its handshake; the gate calls it when a connection
        that had to wait may go ahead. Aborting ``protocol`` while it waits
        closes the connection.
        """

    def want_handshake(self, protocol: asyncio.Protocol) -> bool:
        """It sent its first bytes: may its handshake start now?"""

    def handshake_over(self, protocol: asyncio.Protocol, ok: bool) -> None:
        """Its handshake ended; a failed one no longer counts anywhere."""


class Listener(Protocol):
    """A listening endpoint."""

    @property
    def port(self) -> int:
        """The port it listens on."""

    def close(self) -> None:
        """Stop accepting connections."""

    async def wait_closed(self) -> None:
        """Wait until it is closed."""


class LinkNetwork(Protocol):
    """What links need from a network."""

    async def create_server(
        self,
        factory: ProtocolFactory,
        host: str,
        port: int,
        *,
        ssl: SSLContext | None = None,
        gate: HandshakeGate | None = None,
    ) -> Listener:
        """Listen on ``host:port`` (0: any free port); one protocol per connection.

        With ``ssl``, a connection reaches its protocol only after the TLS
        handshake; ``gate`` then decides which connections may wait for one
        and when each may start it.
        """

    async def create_connection(
        self,
        factory: ProtocolFactory,
        host: str,
        port: int,
        *,
        ssl: SSLContext | None = None,
        server_hostname: str | None = None,
    ) -> asyncio.Protocol:
        """Connect to ``host:port``; returns the connected protocol.

        With ``ssl``, after the TLS handshake; ``server_hostname`` is the
        name the peer's certificate must carry.

        Raises:
            ConnectionRefusedError: When nothing listens there.
            OSError: When the connection fails otherwise.
        """


class _TcpListener:
    __slots__ = ("_server",)

    def __init__(self, server: asyncio.Server) -> None:
        self._server = server

    @property
    def port(self) -> int:
        return int(self._server.sockets[0].getsockname()[1])

    def close(self) -> None:
        self._server.close()

    async def wait_closed(self) -> None:
        await self._server.wait_closed()


_HUNG_UP = getattr(select, "POLLRDHUP", 0) | select.POLLHUP | select.POLLERR


def _hung_up(sock: socket.socket) -> bool:
    """Whether the peer has closed its side (Linux says so even with data unread)."""
    poller = select.poll()
    poller.register(sock, _HUNG_UP)
    return bool(poller.poll(0))


class _Waiting:
    """A connection accepted as a bare socket, before its TLS handshake."""

    __slots__ = ("deadline", "protocol", "sock", "task")

    def __init__(self, sock: socket.socket, protocol: asyncio.Protocol) -> None:
        self.sock = sock
        self.protocol = protocol
        #: Fires when its handshake is overdue (the one timer helper, transport/timer).
        self.deadline: Alarm | None = None
        self.task: asyncio.Task[None] | None = None


class _GatedTlsListener:
    """A TLS listener that holds no TLS state for connections not yet let through.

    asyncio's own TLS server gives each accepted connection a TLS object and
    a 256 KiB read buffer at once, and says nothing to the protocol until the
    handshake ends: a thousand connections that never finish one cost
    hundreds of MiB and count toward no bound. Here a connection is a bare
    socket until it has sent its first bytes and its :class:`HandshakeGate`
    lets it start; the handshake itself is asyncio's
    (``loop.connect_accepted_socket``). Each connection has
    :data:`TLS_HANDSHAKE_TIMEOUT` seconds from its arrival, waiting included.
    """

    def __init__(
        self,
        factory: ProtocolFactory,
        host: str,
        port: int,
        context: SSLContext,
        gate: HandshakeGate,
    ) -> None:
        self._loop = asyncio.get_running_loop()
        #: Accepting again after a pause (out of descriptors, say).
        self._paused = Alarm(self._resume)
        self._factory = factory
        self._context = context
        self._gate = gate
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._sock = socket.create_server((host, port), family=family, backlog=1024)
        self._sock.setblocking(False)
        self._waiting: dict[asyncio.Protocol, _Waiting] = {}
        self._closed = asyncio.Event()
        self._loop.add_reader(self._sock.fileno(), self._accept)

    @property
    def port(self) -> int:
        return int(self._sock.getsockname()[1])

    def close(self) -> None:
        if self._closed.is_set():
            return
        self._closed.set()
        self._paused.cancel()
        self._loop.remove_reader(self._sock.fileno())
        self._sock.close()
        for waiting in list(self._waiting.values()):
            self._cancel(waiting)

    async def wait_closed(self) -> None:
        await self._closed.wait()

    def _accept(self) -> None:
        for _ in range(64):  # a bounded batch per wake-up
            try:
                sock, address = self._sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # out of descriptors, say: pause, not spin
                log.warning("accepting a TLS connection failed: %s; pausing for 0.1 s", exc)
                self._loop.remove_reader(self._sock.fileno())
                self._paused.after(0.1)
                return
            sock.setblocking(False)
            protocol = self._factory()
            waiting = _Waiting(sock, protocol)
            if not self._gate.arrived(protocol, address, functools.partial(self._start, waiting)):
                sock.close()
                continue
            self._waiting[protocol] = waiting
            waiting.deadline = Alarm(functools.partial(self._expired, waiting))
            waiting.deadline.after(TLS_HANDSHAKE_TIMEOUT)
            self._loop.add_reader(sock.fileno(), self._readable, waiting)
            cancel_pending = getattr(protocol, "cancel_pending", False)
            if cancel_pending is None:  # a Link: aborting it drops this connection
                protocol.cancel_pending = functools.partial(self._cancel, waiting)  # type: ignore[attr-defined]

    def _resume(self) -> None:
        if not self._closed.is_set():
            self._loop.add_reader(self._sock.fileno(), self._accept)

    def _readable(self, waiting: _Waiting) -> None:
        self._loop.remove_reader(waiting.sock.fileno())
        try:
            first = waiting.sock.recv(1, socket.MSG_PEEK)
        except (BlockingIOError, InterruptedError):
            self._loop.add_reader(waiting.sock.fileno(), self._readable, waiting)
            return
        except OSError:
            first = b""
        if not first:  # closed before a handshake: nothing to start
            self._cancel(waiting)
            return
        if self._gate.want_handshake(waiting.protocol):
            self._start(waiting)

    def _start(self, waiting: _Waiting) -> None:
        if waiting.task is not None or waiting.protocol not in self._waiting:
            return
        if _hung_up(waiting.sock):  # it gave up while it waited: no handshake to run
            self._cancel(waiting)
            return
        waiting.task = self._loop.create_task(self._handshake(waiting))

    async def _handshake(self, waiting: _Waiting) -> None:
        ok = False
        try:
            await self._loop.connect_accepted_socket(
                lambda: waiting.protocol,
                waiting.sock,
                ssl=self._context,
                ssl_handshake_timeout=TLS_HANDSHAKE_TIMEOUT,
            )
            ok = True
        # A failed handshake, whatever it is.
        except (Exception, asyncio.CancelledError) as exc:  # noqa: BLE001
            log.debug("TLS handshake failed: %r", exc)
            with contextlib.suppress(OSError):
                waiting.sock.close()
        finally:
            self._forget(waiting)
            self._gate.handshake_over(waiting.protocol, ok)

    def _expired(self, waiting: _Waiting) -> None:
        waiting.deadline = None
        log.debug("dropped a TLS connection: no handshake within %s s", TLS_HANDSHAKE_TIMEOUT)
        self._cancel(waiting)

    def _cancel(self, waiting: _Waiting) -> None:
        """Drop a waiting connection (expired, evicted, or the listener closing)."""
        if waiting.task is not None:
            waiting.task.cancel()  # its finally forgets it and tells the gate
            return
        if self._forget(waiting):
            self._drop_socket(waiting)
            self._gate.handshake_over(waiting.protocol, False)

    def _forget(self, waiting: _Waiting) -> bool:
        if self._waiting.pop(waiting.protocol, None) is None:
            return False
        if waiting.deadline is not None:
            waiting.deadline.cancel()
            waiting.deadline = None
        if waiting.task is None:
            with contextlib.suppress(ValueError, OSError):
                self._loop.remove_reader(waiting.sock.fileno())
        return True

    def _drop_socket(self, waiting: _Waiting) -> None:
        with contextlib.suppress(OSError):
            waiting.sock.close()


class TcpNetwork:
    """Real TCP sockets for links."""

    async def create_server(
        self,
        factory: ProtocolFactory,
        host: str,
        port: int,
        *,
        ssl: SSLContext | None = None,
        gate: HandshakeGate | None = None,
    ) -> Listener:
        """Listen with ``loop.create_server`` (``SO_REUSEADDR`` on).

        An IP address (``0.0.0.0``, the default) is bound here, as the loop
        would bind it, and the socket handed over: the loop would resolve
        it with ``getaddrinfo``, which uvloop runs on libuv's thread pool,
        four threads that then stay for the life of the process (about
        0.5 MiB resident, with the ``idna`` codec it loads). A host name,
        ``""`` or a scoped IPv6 address still goes through the loop.

        With ``ssl`` and ``gate``, a :class:`_GatedTlsListener` instead.
        """
        loop = asyncio.get_running_loop()
        if ssl is not None and gate is not None:
            return _GatedTlsListener(factory, host, port, ssl, gate)
        handshake_timeout = TLS_HANDSHAKE_TIMEOUT if ssl is not None else None
        family = ip_family(host)
        if family is None:
            server = await loop.create_server(
                factory,
                host,
                port,
                reuse_address=True,
                ssl=ssl,
                ssl_handshake_timeout=handshake_timeout,
            )
            return _TcpListener(server)
        # What the loop does for one address: SO_REUSEADDR, IPV6_V6ONLY, bind.
        sock = socket.create_server((host, port), family=family, backlog=LISTEN_BACKLOG)
        try:
            server = await loop.create_server(
                factory,
                sock=sock,
                backlog=LISTEN_BACKLOG,
                ssl=ssl,
                ssl_handshake_timeout=handshake_timeout,
            )
        except BaseException:
            sock.close()
            raise
        return _TcpListener(server)

    async def create_connection(
        self,
        factory: ProtocolFactory,
        host: str,
        port: int,
        *,
        ssl: SSLContext | None = None,
        server_hostname: str | None = None,
    ) -> asyncio.Protocol:
        """Connect with ``loop.create_connection``."""
        loop = asyncio.get_running_loop()
        _, protocol = await loop.create_connection(
            factory,
            host,
            port,
            ssl=ssl,
            server_hostname=server_hostname if ssl is not None else None,
            ssl_handshake_timeout=TLS_HANDSHAKE_TIMEOUT if ssl is not None else None,
        )
        return protocol


#: The network links use unless given another.
TCP = TcpNetwork()
