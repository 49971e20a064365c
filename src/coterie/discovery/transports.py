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
import errno
import ipaddress
import logging
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

from coterie.discovery.interfaces import Interface, ipv4_interfaces, source_address
from coterie.discovery.options import NO_ROUTE_HINT, DiscoverySettings

__all__ = [
    "DiscoveryTransport",
    "Encoder",
    "Outlet",
    "ReceiveCallback",
    "RedisTransport",
    "UdpTransport",
    "make_transport",
    "plan_outlets",
]

log = logging.getLogger("coterie.discovery")

#: Send errors that mean the hellos have nowhere to go.
_NO_ROUTE = frozenset({errno.ENETUNREACH, errno.EHOSTUNREACH, errno.EADDRNOTAVAIL})

ReceiveCallback = Callable[[bytes, str], None]

#: The Redis channel cote publishes discovery packets on.
REDIS_CHANNEL = "cote"
_REDIS_RETRY_FIRST = 0.05


class DiscoveryTransport(Protocol):
    """What the discovery service needs from a medium."""

    async def start(self, receive: ReceiveCallback) -> None:
        """Begin receiving; ``receive(data, source_address)`` per datagram."""

    def send(self, data: bytes) -> None:
        """Send one datagram to every destination (best effort).

        A transport may also offer ``send_each(encode)``: it then calls
        ``encode(local_address)`` once per local address its datagrams leave
        from and sends each result there, so every hello names the address it
        leaves from (:class:`UdpTransport` and :class:`RedisTransport` do).
        """

    async def close(self) -> None:
        """Stop receiving and release the medium."""


@dataclass(frozen=True, slots=True)
class Outlet:
    """Datagrams that leave from one local address.

    Attributes:
        address: The local address they leave from, which their hellos
            announce.
        destinations: ``(host, port)`` pairs they go to.
    """

    address: str
    destinations: tuple[tuple[str, int], ...]


#: Encodes one hello for the address it will announce; ``None`` skips it.
Encoder = Callable[[str], bytes | None]

_LIMITED_BROADCAST = "255.255.255.255"
_INTERFACES_TTL = 1.0


def _is_ipv4(text: str) -> bool:
    try:
        ipaddress.IPv4Address(text)
    except ValueError:
        return False
    return True


def plan_outlets(
    settings: DiscoverySettings,
    interfaces: list[Interface],
    source_for: Callable[[str], str | None],
    unicast: tuple[str, ...] = (),
) -> list[Outlet]:
    """Where hellos go and which address each says (pure; the rules of UDP discovery).

    - Unicast (the ``unicast`` list and resolved seeds): to each address,
      grouped by the local address the route to it leaves from.
    - Multicast: to the group, from ``address`` when bound to one, else from
      where the route to the group leaves.
    - Broadcast to 255.255.255.255 (cote's default) on a host with several
      interfaces: a directed broadcast on each interface that is up and can
      broadcast, each announcing that interface's address, so every attached
      LAN hears a reachable address. With ``address`` set: only that
      interface's. With no such interface: 255.255.255.255 as cote does.
    - Any other broadcast address (127.255.255.255 for host scope): to it,
      from where its route leaves.

    Args:
        settings: The discovery settings.
        interfaces: This host's IPv4 interfaces (:func:`ipv4_interfaces`).
        source_for: The local address a datagram to an IPv4 address leaves
            from (:func:`source_address`), ``None`` without a route.
        unicast: Unicast destinations (static list and resolved seeds).
    """
    port = settings.port
    bound = settings.address if settings.address not in ("", "0.0.0.0") else None
    fallback = bound or "127.0.0.1"
    if unicast or settings.seeds:
        groups: dict[str, list[tuple[str, int]]] = {}
        for dest in unicast:
            source = bound or (source_for(dest) if _is_ipv4(dest) else None) or fallback
            groups.setdefault(source, []).append((dest, port))
        return [Outlet(a, tuple(d)) for a, d in groups.items()]
    if settings.multicast:
        group = settings.multicast
        return [Outlet(bound or source_for(group) or fallback, ((group, port),))]
    if settings.broadcast == _LIMITED_BROADCAST:
        outlets: dict[str, Outlet] = {}
        for iface in interfaces:
            if not iface.can_broadcast or iface.broadcast is None:
                continue
            if bound is not None and iface.address != bound:
                continue
            outlets.setdefault(iface.broadcast, Outlet(iface.address, ((iface.broadcast, port),)))
        if outlets:
            return list(outlets.values())
    dest = settings.broadcast
    return [Outlet(bound or source_for(dest) or fallback, ((dest, port),))]


class _Endpoint(asyncio.DatagramProtocol):
    """The discovery sockets of one transport, or of every unicast transport alike.

    Several components of one process each run discovery on the same port.
    A broadcast or multicast datagram reaches every socket bound to it, but
    a unicast one (a unicast or seeded hello) reaches only one of them. So
    in unicast mode the components of a loop that bind alike share one
    socket, which hands every datagram to each of them.
    """

    def __init__(self, key: tuple[Any, ...]) -> None:
        self.key = key
        self.receivers: list[ReceiveCallback] = []
        self.transports: list[asyncio.DatagramTransport] = []
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._warned_no_route = False

    @property
    def sender(self) -> asyncio.DatagramTransport | None:
        return self.transports[0] if self.transports else None

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        source = str(addr[0])
        for receive in list(self.receivers):
            try:
                receive(data, source)
            except Exception:
                log.exception("discovery receiver failed")

    def error_received(self, exc: Exception) -> None:
        if isinstance(exc, OSError) and exc.errno in _NO_ROUTE and not self._warned_no_route:
            self._warned_no_route = True  # once per socket: the next hellos fail alike
            log.warning(
                "discovery cannot send hellos (%s): no route for the discovery scope; %s",
                exc.strerror or exc,
                NO_ROUTE_HINT,
            )
            return
        log.debug("discovery socket error: %s", exc)

    def close(self) -> None:
        for transport in self.transports:
            transport.close()
        self.transports.clear()


_ENDPOINTS: dict[tuple[Any, ...], _Endpoint] = {}


class UdpTransport:
    """cote's UDP discovery, bound with address reuse.

    Hellos go to the unicast list and resolved seeds when set, else the
    multicast group, else the broadcast address, always to the discovery
    port; :func:`plan_outlets` says from which address each leaves.

    Bound to a unicast ``address``, the socket hears no broadcast (Linux
    delivers broadcasts only to sockets bound to the wildcard or to the
    broadcast address itself), so the transport also listens on that
    interface's broadcast address and on 255.255.255.255 (or joins the
    multicast group there).

    In unicast mode, components of one process that bind alike share the
    socket (see :class:`_Endpoint`).
    """

    def __init__(self, settings: DiscoverySettings) -> None:
        self._settings = settings
        self._endpoint: _Endpoint | None = None
        self._receive: ReceiveCallback | None = None
        self._dynamic: tuple[str, ...] = ()
        self._interfaces: list[Interface] = []
        self._interfaces_at = -_INTERFACES_TTL
        self._outlets: list[Outlet] | None = None

    @property
    def destinations(self) -> list[tuple[str, int]]:
        """Where each datagram is sent."""
        return [d for outlet in self.outlets() for d in outlet.destinations]

    def set_unicast(self, addresses: list[str] | tuple[str, ...]) -> None:
        """Send to these addresses too, besides the ``unicast`` list (resolved seeds)."""
        self._dynamic = tuple(addresses)
        self._outlets = None

    def outlets(self) -> list[Outlet]:
        """Where hellos go now, and the address each announces."""
        now = time.monotonic()
        if now - self._interfaces_at >= _INTERFACES_TTL:
            self._interfaces = ipv4_interfaces()
            self._interfaces_at = now
            self._outlets = None
        if self._outlets is None:
            unicast = tuple(dict.fromkeys((*self._settings.unicast, *self._dynamic)))
            port = self._settings.port
            self._outlets = plan_outlets(
                self._settings, self._interfaces, lambda d: source_address(d, port), unicast
            )
        return self._outlets

    def _binding(self) -> tuple[Any, ...]:
        s = self._settings
        multicast = s.multicast if s.multicast and not (s.unicast or s.seeds) else None
        return (s.address or "0.0.0.0", s.port, multicast, s.multicast_ttl,
                bool(s.unicast or s.seeds), s.broadcast)  # fmt: skip

    def _extra_binds(self) -> list[str]:
        """Broadcast addresses to listen on too when bound to a unicast address."""
        s = self._settings
        if s.address in ("", "0.0.0.0") or s.unicast or s.seeds or s.multicast:
            return []
        extra = [dest for outlet in self.outlets() for dest, _ in outlet.destinations]
        return [a for a in dict.fromkeys([*extra, _LIMITED_BROADCAST]) if a != s.address]

    def _socket(self, bind: str, *, multicast: str | None, send: bool) -> socket.socket:
        s = self._settings
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
            sock.bind((bind, s.port))
            if multicast:
                interface = s.address if s.address not in ("", "0.0.0.0") else "0.0.0.0"
                mreq = socket.inet_aton(multicast) + socket.inet_aton(interface)
                sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq)
                if send:
                    sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, s.multicast_ttl)
                    if interface != "0.0.0.0":
                        sock.setsockopt(
                            socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(interface)
                        )
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        return sock

    async def _open(self, endpoint: _Endpoint) -> None:
        loop = asyncio.get_running_loop()
        s = self._settings
        multicast = self._binding()[2]
        bound = s.address not in ("", "0.0.0.0")
        socks = [self._socket(s.address or "0.0.0.0", multicast=multicast if not bound else None,
                              send=True)]  # fmt: skip
        if multicast and bound:
            socks.append(self._socket(multicast, multicast=multicast, send=False))
        for extra in self._extra_binds():
            try:
                socks.append(self._socket(extra, multicast=None, send=False))
            except OSError as exc:
                log.debug("cannot listen on %s:%s as well: %s", extra, s.port, exc)
        if multicast and bound:
            with contextlib.suppress(OSError):
                socks[0].setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, s.multicast_ttl)
                socks[0].setsockopt(
                    socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(s.address)
                )
        for sock in socks:
            transport, _ = await loop.create_datagram_endpoint(lambda: endpoint, sock=sock)
            endpoint.transports.append(transport)

    async def start(self, receive: ReceiveCallback) -> None:
        """Bind the discovery port (or share this process's socket) and start receiving."""
        loop = asyncio.get_running_loop()
        s = self._settings
        # Only unicast needs the sharing; broadcast and multicast reach every socket.
        key = (loop, *self._binding()) if s.unicast or s.seeds else (loop, id(self))
        endpoint = _ENDPOINTS.get(key)
        if endpoint is None:
            endpoint = _ENDPOINTS[key] = _Endpoint(key)
            try:
                await self._open(endpoint)
            except BaseException as exc:
                del _ENDPOINTS[key]
                endpoint.close()
                endpoint.ready.set_exception(exc)
                endpoint.ready.exception()  # retrieved: no "never retrieved" warning
                raise
            endpoint.ready.set_result(None)
        else:
            await asyncio.shield(endpoint.ready)
        endpoint.receivers.append(receive)
        self._endpoint, self._receive = endpoint, receive

    def send(self, data: bytes) -> None:
        """Send a datagram to every destination."""
        self.send_each(lambda _address: data)

    def send_each(self, encode: Encoder) -> None:
        """Send to every outlet the datagram ``encode(outlet.address)`` returns."""
        endpoint = self._endpoint
        transport = endpoint.sender if endpoint is not None else None
        if transport is None or transport.is_closing():
            return
        for outlet in self.outlets():
            data = encode(outlet.address)
            if data is None:
                continue
            for dest in outlet.destinations:
                try:
                    transport.sendto(data, dest)
                except OSError as exc:  # pragma: no cover - depends on routing
                    log.debug("discovery send to %s failed: %s", dest, exc)

    async def close(self) -> None:
        """Leave the socket; the last transport on it closes it."""
        endpoint, receive = self._endpoint, self._receive
        self._endpoint = self._receive = None
        if endpoint is None or receive is None:
            return
        with contextlib.suppress(ValueError):
            endpoint.receivers.remove(receive)
        if not endpoint.receivers:
            if _ENDPOINTS.get(endpoint.key) is endpoint:
                del _ENDPOINTS[endpoint.key]
            endpoint.close()


class RedisTransport:
    """cote's Redis discovery: PUBLISH/SUBSCRIBE on the channel ``cote``.

    The sender's address is unknown here, so each hello names it: the local
    address of the route to Redis (:meth:`send_each`), the address the
    other nodes of a Redis mesh reach this one by when they reach Redis the
    same way. Peers connect to it (or to the host name cote announces).

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
        #: The local address of the route to Redis (127.0.0.1 until known).
        self.local_address = "127.0.0.1"
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
        await self._find_local_address()
        await self._subscribe()
        self._reader = asyncio.create_task(self._read(receive), name="coterie-redis-discovery")

    async def _find_local_address(self) -> None:
        parts = urlsplit(self._url)
        if parts.scheme == "unix" or not parts.hostname:
            return
        port = parts.port or 6379
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(
                parts.hostname, port, family=socket.AF_INET, type=socket.SOCK_STREAM
            )
        except OSError as exc:
            log.debug("cannot resolve redis host %s: %s", parts.hostname, exc)
            return
        for *_, sockaddr in infos:
            found = source_address(str(sockaddr[0]), port)
            if found is not None:
                self.local_address = found
                return

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
                        await self._find_local_address()
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
        self.send_each(lambda _address: data)

    def send_each(self, encode: Encoder) -> None:
        """Publish ``encode(local_address)`` on the ``cote`` channel."""
        if self._pub is None:
            return
        data = encode(self.local_address)
        if data is None:
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
    """The transport the settings ask for: etcd or Redis when set, else UDP."""
    if settings.etcd is not None:
        from coterie.discovery.etcd import EtcdTransport

        return EtcdTransport(settings)
    if settings.redis is not None:
        return RedisTransport(settings)
    return UdpTransport(settings)
