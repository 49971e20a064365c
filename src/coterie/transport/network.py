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
from collections.abc import Callable
from ssl import SSLContext
from typing import Protocol

__all__ = ["TCP", "LinkNetwork", "Listener", "ProtocolFactory", "TcpNetwork"]

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


class LinkNetwork(Protocol):
    """What links need from a network."""

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
    """Real TCP sockets for links."""

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


#: The network links use unless given another.
TCP = TcpNetwork()
