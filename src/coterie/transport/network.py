"""The network seam: where links and discovery get their bytes moved.

Internal, except :class:`Network`, which :mod:`coterie.testing` implements.

Design (after httpx's transport seam): every component reaches the network
through one object with asyncio's own shapes, so a test can swap TCP and UDP
for an in-process medium and keep every other line of coterie, framing and
routing included, unchanged:

- :meth:`Network.create_server` and :meth:`Network.create_connection` take an
  ``asyncio.Protocol`` factory, as the event loop's methods do; the links of
  :mod:`coterie.transport.link` are such protocols;
- :meth:`Network.discovery_transport` gives the discovery medium.

:class:`TcpNetwork` is the default: real TCP sockets, and UDP or Redis for
discovery as the settings say.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from ssl import SSLContext
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from coterie.discovery.options import DiscoverySettings
    from coterie.discovery.transports import DiscoveryTransport

__all__ = ["Listener", "Network", "ProtocolFactory", "TcpNetwork"]

ProtocolFactory = Callable[[], asyncio.Protocol]

#: Seconds a TLS handshake may take before the connection is dropped.
TLS_HANDSHAKE_TIMEOUT = 5.0


class Listener(Protocol):
    """A listening endpoint."""

    @property
    def port(self) -> int:
        """The port it listens on."""

    def close(self) -> None:
        """Stop accepting connections."""

    async def wait_closed(self) -> None:
        """Wait until it is closed."""


class Network(Protocol):
    """What components need from a network."""

    async def create_server(
        self,
        factory: ProtocolFactory,
        host: str,
        port: int,
        *,
        ssl: SSLContext | None = None,
    ) -> Listener:
        """Listen on ``host:port`` (0: any free port); one protocol per connection.

        With ``ssl``, a connection reaches its protocol only after the TLS
        handshake.
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

    def discovery_transport(self, settings: DiscoverySettings) -> DiscoveryTransport:
        """The discovery medium for these settings."""


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


class TcpNetwork:
    """Real sockets: TCP links, and UDP or Redis discovery as the settings say."""

    async def create_server(
        self,
        factory: ProtocolFactory,
        host: str,
        port: int,
        *,
        ssl: SSLContext | None = None,
    ) -> Listener:
        """Listen with ``loop.create_server`` (``SO_REUSEADDR`` on)."""
        loop = asyncio.get_running_loop()
        server = await loop.create_server(
            factory,
            host,
            port,
            reuse_address=True,
            ssl=ssl,
            ssl_handshake_timeout=TLS_HANDSHAKE_TIMEOUT if ssl is not None else None,
        )
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

    def discovery_transport(self, settings: DiscoverySettings) -> DiscoveryTransport:
        """UDP broadcast, multicast or unicast, or Redis, by ``settings``."""
        from coterie.discovery.transports import make_transport

        return make_transport(settings)


#: The network components use unless given another.
DEFAULT_NETWORK = TcpNetwork()
