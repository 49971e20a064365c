"""UDP discovery: broadcast, multicast, unicast.

Design: :class:`UdpTransport` meets the typed protocols of
:mod:`coterie.discovery.medium` (a transport moves opaque datagrams; the
service above it parses them). :func:`plan_outlets` holds the pure rules of
where hellos go. The medium a component gets (UDP, Redis or etcd) is chosen
in one place, :func:`coterie.discovery.network.make_transport`.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import logging
import math
import socket
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

from coterie.discovery.interfaces import Interface, ipv4_interfaces, source_address
from coterie.discovery.medium import DiscoveryTransport, Encoder, ReceiveCallback
from coterie.discovery.options import NO_ROUTE_HINT, DiscoverySettings
from coterie.discovery.shared import PerLoop
from coterie.protocol.nodes import ipv4_numbers
from coterie.transport.timer import Alarm

__all__ = [
    "DiscoveryTransport",
    "Encoder",
    "Outlet",
    "ReceiveCallback",
    "UdpTransport",
    "lists_interfaces",
    "plan_outlets",
]

log = logging.getLogger("coterie.discovery")

#: Send errors that mean the hellos have nowhere to go.
_NO_ROUTE = frozenset({errno.ENETUNREACH, errno.EHOSTUNREACH, errno.EADDRNOTAVAIL})


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


_LIMITED_BROADCAST = "255.255.255.255"
_INTERFACES_TTL = 1.0


def _is_ipv4(text: str) -> bool:
    """A dotted IPv4 address (as strict as ``ipaddress.IPv4Address``: no leading zeros)."""
    return ipv4_numbers(text) is not None


def lists_interfaces(settings: DiscoverySettings, unicast: tuple[str, ...] = ()) -> bool:
    """Whether :func:`plan_outlets` looks at the interfaces for these settings.

    Only for a broadcast to 255.255.255.255 (cote's default); elsewhere the
    interfaces are not listed at all (nor :mod:`ctypes` loaded to list them).
    """
    return (
        not (unicast or settings.seeds)
        and not settings.multicast
        and settings.broadcast == _LIMITED_BROADCAST
    )


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


#: The receive buffer asked for each discovery socket: room for a mass
#: restart, every node of a 1,000-node mesh saying hello at once (each small
#: datagram costs about 2 KiB of buffer in the kernel's accounting).
RECEIVE_BUFFER = 4 * 1024 * 1024
#: Most datagrams read per socket per wake-up, so a flood cannot hold the
#: loop; the rest wait for the next wake-up.
DRAIN_LIMIT = 512
#: Once datagrams come closer together than this, the socket is read on a
#: timer this often instead (a twentieth of the hello interval when that is
#: shorter), the datagrams gathering in its buffer meanwhile: a busy mesh
#: costs at most 20 wake-ups a second, and sparse datagrams are read at once.
PACE = 0.05


class _Endpoint:
    """The discovery sockets of one transport, or of every unicast transport alike.

    Several components of one process may run discovery on the same port
    (with different settings; equal settings share one transport already).
    A broadcast or multicast datagram reaches every socket bound to it, but
    a unicast one (a unicast or seeded hello) reaches only one of them. So
    in unicast mode the transports of a loop that bind alike share one
    socket, which hands every datagram to each of them.

    A burst costs one wake-up: each socket is read by a reader callback
    that drains it (up to :data:`DRAIN_LIMIT` datagrams) rather than one
    ``datagram_received`` call, and one trip through the selector, per
    datagram. When wake-ups come less than ``pace`` seconds apart, the
    socket is read on a timer every ``pace`` seconds instead (no selector
    changes), so a busy mesh costs at most ``1 / pace`` wake-ups a second
    while a sparse datagram (a newcomer's hello, a fast-contact reply) is
    read at once; the first poll that finds nothing hands the socket back to
    the selector. Sends go straight to
    the socket: a hello that finds the send buffer full is dropped (the next
    interval sends another).

    Args:
        key: Its key in :data:`_ENDPOINTS`.
        pace: Seconds a socket rests after a wake-up that read something.
    """

    def __init__(self, key: Hashable, pace: float = PACE) -> None:
        self.key = key
        self.pace = pace
        #: Sockets read on a timer while busy (the one timer helper, transport/timer).
        self._resting: dict[int, Alarm] = {}
        self._woke = -math.inf
        self.receivers: list[ReceiveCallback] = []
        self.sockets: list[socket.socket] = []
        self._loop = asyncio.get_running_loop()
        self._warned_no_route = False
        #: The receive buffer the kernel granted, in bytes (of the first socket).
        self.receive_buffer = 0
        #: Datagrams received, and wake-ups that read them.
        self.received = 0
        self.wakeups = 0

    @property
    def sender(self) -> socket.socket | None:
        return self.sockets[0] if self.sockets else None

    def add(self, sock: socket.socket) -> None:
        """Read this socket from now on."""
        self.sockets.append(sock)
        self._loop.add_reader(sock.fileno(), self._drain, sock)

    def _drain(self, sock: socket.socket) -> None:
        """The reader callback: read what is there; when busy, poll on a timer instead."""
        self._read(sock)
        now = self._loop.time()
        busy = now - self._woke < self.pace
        self._woke = now
        if busy and self.pace > 0 and sock in self.sockets:
            fd = sock.fileno()
            self._loop.remove_reader(fd)
            self._rest(fd, sock)

    def _rest(self, fd: int, sock: socket.socket) -> None:
        """Read ``sock`` again in ``pace`` seconds, not on its reader."""
        alarm = self._resting[fd] = Alarm(functools.partial(self._poll, sock))
        alarm.after(self.pace)

    def _poll(self, sock: socket.socket) -> None:
        """While datagrams keep coming, read them every ``pace``; else wait for the next."""
        fd = sock.fileno()
        if self._resting.pop(fd, None) is None or sock not in self.sockets:
            return
        if self._read(sock):
            self._rest(fd, sock)
        else:
            self._loop.add_reader(fd, self._drain, sock)

    def _read(self, sock: socket.socket) -> int:
        """Hand every datagram waiting on ``sock`` (a bounded number) to the receivers."""
        self.wakeups += 1
        receivers = self.receivers
        recvfrom = sock.recvfrom
        read = 0
        for _ in range(DRAIN_LIMIT):
            try:
                data, addr = recvfrom(65536)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:
                self.error(exc)
                break
            read += 1
            for receive in receivers if len(receivers) == 1 else list(receivers):
                try:
                    receive(data, addr[0])
                except Exception:
                    log.exception("discovery receiver failed")
        self.received += read
        return read

    def sendto(self, data: bytes, dest: tuple[str, int]) -> None:
        """Send one datagram now, or drop it (best effort)."""
        sock = self.sender
        if sock is None:
            return
        try:
            sock.sendto(data, dest)
        except (BlockingIOError, InterruptedError):
            log.debug("discovery send buffer full: a hello to %s dropped", dest[0])
        except OSError as exc:
            self.error(exc)

    def error(self, exc: OSError) -> None:
        if exc.errno in _NO_ROUTE and not self._warned_no_route:
            self._warned_no_route = True  # once per socket: the next hellos fail alike
            log.warning(
                "discovery cannot send hellos (%s): no route for the discovery scope; %s",
                exc.strerror or exc,
                NO_ROUTE_HINT,
            )
            return
        log.debug("discovery socket error: %s", exc)

    def close(self) -> None:
        for timer in self._resting.values():
            timer.cancel()
        self._resting.clear()
        for sock in self.sockets:
            self._loop.remove_reader(sock.fileno())
            sock.close()
        self.sockets.clear()


def size_receive_buffer(sock: socket.socket, wanted: int = RECEIVE_BUFFER) -> int:
    """Ask for a receive buffer of ``wanted`` bytes; returns what the kernel granted.

    ``SO_RCVBUFFORCE`` (root, or ``CAP_NET_ADMIN``) passes the system's cap
    ``net.core.rmem_max``; without it the kernel grants at most that cap.
    Linux reports double the size asked (its bookkeeping overhead).
    """
    force = getattr(socket, "SO_RCVBUFFORCE", None)
    for option in (force, socket.SO_RCVBUF):
        if option is None:
            continue
        try:
            sock.setsockopt(socket.SOL_SOCKET, option, wanted)
            break
        except OSError:
            continue
    granted: int = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
    return granted


#: The discovery sockets of each event loop, by binding (unicast) or transport.
_ENDPOINTS: PerLoop[_Endpoint] = PerLoop("discovery socket")


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
        if now - self._interfaces_at >= _INTERFACES_TTL:  # routes are asked again too
            if lists_interfaces(self._settings, (*self._settings.unicast, *self._dynamic)):
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

    async def _open_or_close(self, endpoint: _Endpoint) -> None:
        try:
            await self._open(endpoint)
        except BaseException:
            endpoint.close()
            raise

    async def _open(self, endpoint: _Endpoint) -> None:
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
        granted = size_receive_buffer(socks[0])
        endpoint.receive_buffer = granted
        if granted < RECEIVE_BUFFER:
            log.info(
                "discovery receive buffer: %d bytes granted of %d asked; a mass restart "
                "may overflow it (raise net.core.rmem_max, or run with CAP_NET_ADMIN)",
                granted,
                RECEIVE_BUFFER,
            )
        else:
            log.debug("discovery receive buffer: %d bytes", granted)
        for sock in socks:
            endpoint.add(sock)

    async def start(self, receive: ReceiveCallback) -> None:
        """Bind the discovery port (or share this process's socket) and start receiving."""
        s = self._settings
        # Only unicast needs the sharing; broadcast and multicast reach every socket.
        key = self._binding() if s.unicast or s.seeds else id(self)
        pace = min(PACE, s.hello_interval / 1000 / 20)
        endpoint = await _ENDPOINTS.join(key, lambda: _Endpoint(key, pace), self._open_or_close)
        endpoint.receivers.append(receive)
        self._endpoint, self._receive = endpoint, receive

    def send(self, data: bytes) -> None:
        """Send a datagram to every destination."""
        self.send_each(lambda _address: data)

    def send_each(self, encode: Encoder) -> None:
        """Send to every outlet the datagram ``encode(outlet.address)`` returns."""
        endpoint = self._endpoint
        if endpoint is None or endpoint.sender is None:
            return
        for outlet in self.outlets():
            data = encode(outlet.address)
            if data is None:
                continue
            for dest in outlet.destinations:
                endpoint.sendto(data, dest)

    async def close(self) -> None:
        """Leave the socket; the last transport on it closes it."""
        endpoint, receive = self._endpoint, self._receive
        self._endpoint = self._receive = None
        if endpoint is None or receive is None:
            return
        with contextlib.suppress(ValueError):
            endpoint.receivers.remove(receive)
        if not endpoint.receivers:
            _ENDPOINTS.discard(endpoint.key, endpoint)
            endpoint.close()
