"""An in-process network: links and discovery without sockets.

Design: :class:`MemoryNetwork` implements :class:`coterie.discovery.network.Network`
with asyncio's own shapes, so components run unchanged over it:

- a connection is two :class:`_Pipe` transports, each delivering what is
  written to the other side's ``data_received`` with ``loop.call_soon``
  (in order, never re-entrantly), so framing and routing run exactly as over
  TCP, bytes included;
- discovery is a hub that hands every datagram to every other member with
  ``call_soon``. Components hear each other within a loop turn, and fast
  contact makes a newcomer known at once: no discovery delay.

Ports are allocated per network, starting at 1; hosts are ignored (every
component of one network is on one "host").
"""

from __future__ import annotations

import asyncio
import itertools
from ssl import SSLContext
from typing import TYPE_CHECKING, Any

from coterie.transport.network import HandshakeGate, Listener, ProtocolFactory

if TYPE_CHECKING:
    from coterie.discovery.options import DiscoverySettings
    from coterie.discovery.transports import DiscoveryTransport, ReceiveCallback

__all__ = ["MemoryNetwork"]

#: The address every in-process component appears to have.
MEMORY_HOST = "127.0.0.1"


class _Pipe(asyncio.Transport):
    """One end of an in-process connection."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, protocol: asyncio.Protocol, name: str
    ) -> None:
        super().__init__()
        self._loop = loop
        self._protocol = protocol
        self._peer: _Pipe | None = None
        self._closing = False
        self._name = name

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name == "peername":
            return (MEMORY_HOST, self._name)
        return default

    def is_closing(self) -> bool:
        return self._closing

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._protocol

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        assert isinstance(protocol, asyncio.Protocol)
        self._protocol = protocol

    def write(self, data: bytes | bytearray | memoryview) -> None:
        peer = self._peer
        if self._closing or peer is None or peer._closing:
            return
        self._loop.call_soon(peer._deliver, bytes(data))

    def writelines(self, list_of_data: Any) -> None:
        self.write(b"".join(list_of_data))

    def can_write_eof(self) -> bool:
        return False

    def get_write_buffer_size(self) -> int:
        return 0  # delivered on the next loop turn: nothing is ever buffered

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return (0, 0)

    def _deliver(self, data: bytes) -> None:
        if not self._closing:
            self._protocol.data_received(data)

    def close(self) -> None:
        self._shutdown(None)

    def abort(self) -> None:
        self._shutdown(None)

    def _shutdown(self, exc: Exception | None) -> None:
        if self._closing:
            return
        self._closing = True
        self._loop.call_soon(self._protocol.connection_lost, exc)
        peer = self._peer
        if peer is not None and not peer._closing:
            # Deliver what is already under way first, then the close.
            self._loop.call_soon(peer._shutdown, None)


class _MemoryListener:
    def __init__(self, network: MemoryNetwork, port: int, factory: ProtocolFactory) -> None:
        self._network = network
        self._port = port
        self.factory = factory
        self._closed = asyncio.Event()

    @property
    def port(self) -> int:
        return self._port

    def close(self) -> None:
        self._network._listeners.pop(self._port, None)
        self._closed.set()

    async def wait_closed(self) -> None:
        await self._closed.wait()


class _HubMember:
    """A component's discovery medium on a :class:`MemoryNetwork`."""

    def __init__(self, network: MemoryNetwork) -> None:
        self._network = network
        self._receive: ReceiveCallback | None = None

    async def start(self, receive: ReceiveCallback) -> None:
        self._receive = receive
        self._network._members.add(self)

    def send(self, data: bytes) -> None:
        loop = asyncio.get_running_loop()
        for member in list(self._network._members):
            if member._receive is not None:
                loop.call_soon(member._deliver, data)

    def _deliver(self, data: bytes) -> None:
        if self._receive is not None:
            self._receive(data, MEMORY_HOST)

    async def close(self) -> None:
        self._network._members.discard(self)
        self._receive = None


def _no_tls(context: SSLContext | None) -> None:
    if context is not None:
        raise NotImplementedError(
            "coterie.testing's in-process network runs no TLS: leave tls= and secret= unset "
            "in tests that use it (TLS is tested over real sockets)"
        )


class MemoryNetwork:
    """A network that lives in one event loop: no sockets, no discovery delay.

    Pass it as ``network=`` to any component; :class:`coterie.testing.Mesh`
    does that for you.
    """

    def __init__(self) -> None:
        self._listeners: dict[int, _MemoryListener] = {}
        self._members: set[_HubMember] = set()
        self._ports = itertools.count(1)
        #: Connections opened so far.
        self.connections = 0

    async def create_server(
        self,
        factory: ProtocolFactory,
        host: str,
        port: int,
        *,
        ssl: SSLContext | None = None,
        gate: HandshakeGate | None = None,
    ) -> Listener:
        """Listen on ``port`` (0: the next free one); ``host`` is ignored.

        ``gate`` is for TLS handshakes, which in-process links do not run.

        Raises:
            OSError: When the port is taken.
            NotImplementedError: With ``ssl``: in-process links run no TLS.
        """
        _no_tls(ssl)
        if port == 0:
            port = next(self._ports)
            while port in self._listeners:
                port = next(self._ports)
        elif port in self._listeners:
            raise OSError(f"in-memory port {port} is taken")
        listener = _MemoryListener(self, port, factory)
        self._listeners[port] = listener
        return listener

    async def create_connection(
        self,
        factory: ProtocolFactory,
        host: str,
        port: int,
        *,
        ssl: SSLContext | None = None,
        server_hostname: str | None = None,
    ) -> asyncio.Protocol:
        """Connect to the listener on ``port``.

        Raises:
            ConnectionRefusedError: When nothing listens there.
            NotImplementedError: With ``ssl``: in-process links run no TLS.
        """
        _no_tls(ssl)
        listener = self._listeners.get(port)
        if listener is None:
            raise ConnectionRefusedError(f"nothing listens on in-memory port {port}")
        loop = asyncio.get_running_loop()
        self.connections += 1
        client, server = factory(), listener.factory()
        client_end = _Pipe(loop, client, f"client-{self.connections}")
        server_end = _Pipe(loop, server, f"server-{self.connections}")
        client_end._peer, server_end._peer = server_end, client_end
        server.connection_made(server_end)
        client.connection_made(client_end)
        return client

    def discovery_transport(self, settings: DiscoverySettings) -> DiscoveryTransport:
        """A member of this network's discovery hub (``settings`` are ignored)."""
        return _HubMember(self)
