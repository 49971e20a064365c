"""Discovery transports: UDP (broadcast, multicast, unicast) and Redis pub/sub.

Design: a transport moves opaque datagrams and nothing else. It is started
with a callback ``receive(data, source_address)`` and offers ``send(data)``.
Packet parsing, encryption and the node table live above it, in
:mod:`coterie.discovery.service`, so a new medium is one small class. Pass one
to a component as ``transport_factory`` to plug it in.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable
from typing import Any, Protocol

from coterie.discovery.options import DiscoverySettings

__all__ = [
    "DiscoveryTransport",
    "ReceiveCallback",
    "RedisTransport",
    "UdpTransport",
    "make_transport",
]

log = logging.getLogger("coterie.discovery")

ReceiveCallback = Callable[[bytes, str], None]

#: The Redis channel cote publishes discovery packets on.
REDIS_CHANNEL = "cote"
_REDIS_RETRY_FIRST = 0.05


class DiscoveryTransport(Protocol):
    """What the discovery service needs from a medium."""

    async def start(self, receive: ReceiveCallback) -> None:
        """Begin receiving; ``receive(data, source_address)`` per datagram."""

    def send(self, data: bytes) -> None:
        """Send one datagram to every destination (best effort)."""

    async def close(self) -> None:
        """Stop receiving and release the medium."""


class _UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, receive: ReceiveCallback) -> None:
        self._receive = receive

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        self._receive(data, str(addr[0]))

    def error_received(self, exc: Exception) -> None:
        log.debug("discovery socket error: %s", exc)


class UdpTransport:
    """cote's UDP discovery: one socket bound with address reuse.

    Hellos go to the unicast list when set, else the multicast group, else the
    broadcast address, always to the discovery port.
    """

    def __init__(self, settings: DiscoverySettings) -> None:
        self._settings = settings
        self._transport: asyncio.DatagramTransport | None = None
        if settings.unicast:
            self._destinations = [(a, settings.port) for a in settings.unicast]
        elif settings.multicast:
            self._destinations = [(settings.multicast, settings.port)]
        else:
            self._destinations = [(settings.broadcast, settings.port)]

    @property
    def destinations(self) -> list[tuple[str, int]]:
        """Where each datagram is sent."""
        return list(self._destinations)

    def _socket(self) -> socket.socket:
        s = self._settings
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
            sock.bind((s.address, s.port))
            if s.multicast and not s.unicast:
                group = socket.inet_aton(s.multicast)
                mreq = group + socket.inet_aton("0.0.0.0")
                sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq)
                sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, s.multicast_ttl)
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        return sock

    async def start(self, receive: ReceiveCallback) -> None:
        """Bind the discovery port and start receiving."""
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _UdpProtocol(receive), sock=self._socket()
        )
        self._transport = transport

    def send(self, data: bytes) -> None:
        """Send a datagram to every destination."""
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        for dest in self._destinations:
            try:
                transport.sendto(data, dest)
            except OSError as exc:  # pragma: no cover - depends on routing
                log.debug("discovery send to %s failed: %s", dest, exc)

    async def close(self) -> None:
        """Close the socket."""
        if self._transport is not None:
            self._transport.close()
            self._transport = None


class RedisTransport:
    """cote's Redis discovery: PUBLISH/SUBSCRIBE on the channel ``cote``.

    The sender's address is unknown here, so peers connect by host name.

    Redis may restart or become unreachable while the mesh runs. The reader
    then logs one warning, resubscribes with a capped backoff (50 ms doubling
    to 2 s) and logs once more when it hears Redis again; publishing fails
    quietly meanwhile (a hello lost is sent again at the next interval). A
    component never crashes for a Redis outage.

    Args:
        settings: Resolved settings with ``redis`` set.
        retry_max: Longest wait between resubscribe attempts, in seconds.
    """

    def __init__(self, settings: DiscoverySettings, *, retry_max: float = 2.0) -> None:
        if settings.redis is None:
            raise ValueError("RedisTransport needs redis settings")
        self._url = settings.redis.connection_url()
        self._retry_max = retry_max
        self._pub: Any = None
        self._pubsub: Any = None
        self._reader: asyncio.Task[None] | None = None
        self._pending: set[asyncio.Task[Any]] = set()
        #: How many times the subscription was lost and restored.
        self.reconnects = 0

    async def start(self, receive: ReceiveCallback) -> None:
        """Connect, subscribe to ``cote`` and start reading.

        Raises:
            ImportError: Without the ``redis`` package (``coterie[redis]``).
            OSError: When Redis cannot be reached at start.
        """
        try:
            import redis.asyncio as aioredis
        except ImportError as exc:  # pragma: no cover - optional extra
            raise ImportError(
                "Redis discovery needs the 'redis' package: pip install 'coterie[redis]'"
            ) from exc
        self._pub = aioredis.Redis.from_url(self._url)
        await self._pub.ping()
        await self._subscribe()
        self._reader = asyncio.create_task(self._read(receive), name="coterie-redis-discovery")

    async def _subscribe(self) -> None:
        self._pubsub = self._pub.pubsub()
        await self._pubsub.subscribe(REDIS_CHANNEL)

    async def _drop_subscription(self) -> None:
        pubsub, self._pubsub = self._pubsub, None
        if pubsub is not None:
            with contextlib.suppress(Exception):
                await pubsub.aclose()

    async def _read(self, receive: ReceiveCallback) -> None:
        delay = _REDIS_RETRY_FIRST
        lost = False
        while True:
            try:
                if self._pubsub is None:
                    await self._subscribe()
                    if lost:
                        lost = False
                        self.reconnects += 1
                        log.warning("redis discovery at %s is back; listening again", self._url)
                    delay = _REDIS_RETRY_FIRST
                async for message in self._pubsub.listen():
                    if message.get("type") == "message":
                        data = message["data"]
                        raw = data if isinstance(data, bytes) else str(data).encode()
                        receive(raw, "0.0.0.0")
                raise ConnectionError("the subscription ended")
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not lost:
                    lost = True
                    log.warning(
                        "redis discovery at %s lost (%s); retrying every %.2g s at most",
                        self._url,
                        exc or type(exc).__name__,
                        self._retry_max,
                    )
                await self._drop_subscription()
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._retry_max)

    def send(self, data: bytes) -> None:
        """Publish a datagram on the ``cote`` channel."""
        if self._pub is None:
            return
        task = asyncio.ensure_future(self._pub.publish(REDIS_CHANNEL, data))
        self._pending.add(task)
        task.add_done_callback(self._sent)

    def _sent(self, task: asyncio.Task[Any]) -> None:
        self._pending.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.debug("redis discovery publish failed: %s", task.exception())

    async def close(self) -> None:
        """Unsubscribe and disconnect."""
        if self._pending:
            await asyncio.wait(self._pending, timeout=1.0)
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
            self._reader = None
        await self._drop_subscription()
        if self._pub is not None:
            with contextlib.suppress(Exception):
                await self._pub.aclose()
            self._pub = None


def make_transport(settings: DiscoverySettings) -> DiscoveryTransport:
    """The transport the settings ask for: Redis when set, else UDP."""
    if settings.redis is not None:
        return RedisTransport(settings)
    return UdpTransport(settings)
