"""This host's IPv4 interfaces and the local address a datagram leaves from.

Design: discovery needs two facts from the operating system, and this module
is the only place that asks for them:

- :func:`ipv4_interfaces`: every IPv4 address of every interface, with its
  broadcast address and flags (``getifaddrs(3)`` through :mod:`ctypes`, on
  Linux and the BSDs/macOS; an empty list elsewhere or on any failure, and
  callers then fall back to the routing table);
- :func:`source_address`: the local address the kernel would send a datagram
  to a destination from (a UDP socket's ``connect`` picks the route and
  sends nothing).

:mod:`ctypes` (with libffi), :mod:`ipaddress` and :mod:`urllib.parse` are
imported on first use: a component in host scope (127.255.255.255), with a
multicast group or with unicast never lists the interfaces, and only Redis
and etcd discovery parse URLs.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import socket
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import ctypes

__all__ = ["Interface", "ipv4_interfaces", "route_to", "source_address"]

log = logging.getLogger("coterie.discovery")

_IFF_UP = 0x1
_IFF_BROADCAST = 0x2
_IFF_LOOPBACK = 0x8


@dataclass(frozen=True, slots=True)
class Interface:
    """One IPv4 address of a network interface.

    Attributes:
        name: The interface name (``eth0``).
        address: Its IPv4 address.
        netmask: Its netmask, or ``None`` when unknown.
        broadcast: Its broadcast address, or ``None`` when it has none.
        flags: The ``IFF_*`` flags.
    """

    name: str
    address: str
    netmask: str | None
    broadcast: str | None
    flags: int

    @property
    def up(self) -> bool:
        """The interface is administratively up."""
        return bool(self.flags & _IFF_UP)

    @property
    def loopback(self) -> bool:
        """A loopback interface (or a loopback address)."""
        if self.flags & _IFF_LOOPBACK:
            return True
        import ipaddress

        return ipaddress.ip_address(self.address).is_loopback

    @property
    def can_broadcast(self) -> bool:
        """Up, not loopback, with a broadcast address of its own."""
        return (
            self.up
            and not self.loopback
            and bool(self.flags & _IFF_BROADCAST)
            and self.broadcast is not None
            and self.broadcast not in (self.address, "0.0.0.0")
        )


_BSD_SOCKADDR = sys.platform == "darwin" or "bsd" in sys.platform


def _ipv4(pointer: int | None) -> str | None:
    """The IPv4 address in a ``struct sockaddr *``, or ``None``."""
    if not pointer:
        return None
    import ctypes

    raw = ctypes.string_at(pointer, 8)
    # Linux: sa_family is a host-order u16; the BSDs: sa_len (u8), sa_family (u8).
    family = raw[1] if _BSD_SOCKADDR else int.from_bytes(raw[0:2], sys.byteorder)
    if family != socket.AF_INET:
        return None
    return socket.inet_ntoa(raw[4:8])


@functools.cache
def _libc() -> tuple[ctypes.CDLL, Any] | None:
    """libc with ``getifaddrs`` typed, and the ``struct ifaddrs`` type; loaded once."""
    if not (sys.platform.startswith("linux") or _BSD_SOCKADDR):
        return None
    import ctypes

    if sys.platform.startswith("linux"):
        # The symbols the process already has: glibc and musl (Alpine, whose
        # libc is no libc.so.6) alike, as gateways/process.py loads prctl.
        name: str | None = None
    else:  # ctypes.util (with shutil, tempfile, bz2, lzma) only where it is needed
        from ctypes.util import find_library

        name = find_library("c")
        if name is None:
            return None

    class Ifaddrs(ctypes.Structure):
        pass

    Ifaddrs._fields_ = [
        ("ifa_next", ctypes.POINTER(Ifaddrs)),
        ("ifa_name", ctypes.c_char_p),
        ("ifa_flags", ctypes.c_uint),
        ("ifa_addr", ctypes.c_void_p),
        ("ifa_netmask", ctypes.c_void_p),
        ("ifa_broadaddr", ctypes.c_void_p),
        ("ifa_data", ctypes.c_void_p),
    ]
    try:
        libc = ctypes.CDLL(name, use_errno=True)
        libc.getifaddrs.argtypes = [ctypes.POINTER(ctypes.POINTER(Ifaddrs))]
        libc.getifaddrs.restype = ctypes.c_int
        libc.freeifaddrs.argtypes = [ctypes.POINTER(Ifaddrs)]
        libc.freeifaddrs.restype = None
    except (OSError, AttributeError):
        return None
    return libc, Ifaddrs


def ipv4_interfaces() -> list[Interface]:
    """Every IPv4 address of every interface, in the system's order.

    Returns an empty list where ``getifaddrs`` is unavailable or fails.
    """
    loaded = _libc()
    if loaded is None:
        return []
    import ctypes

    libc, ifaddrs = loaded
    head = ctypes.POINTER(ifaddrs)()
    if libc.getifaddrs(ctypes.byref(head)) != 0:
        return []
    found: list[Interface] = []
    try:
        node = head
        while node:
            entry = node.contents
            address = _ipv4(entry.ifa_addr)
            if address is not None and entry.ifa_name:
                found.append(
                    Interface(
                        name=entry.ifa_name.decode(errors="replace"),
                        address=address,
                        netmask=_ipv4(entry.ifa_netmask),
                        broadcast=(
                            _ipv4(entry.ifa_broadaddr) if entry.ifa_flags & _IFF_BROADCAST else None
                        ),
                        flags=int(entry.ifa_flags),
                    )
                )
            node = entry.ifa_next
    finally:
        libc.freeifaddrs(head)
    return found


def source_address(destination: str, port: int) -> str | None:
    """The local address a datagram to ``destination`` would leave from.

    ``destination`` must be an IPv4 address (no name is resolved here). Nothing
    is sent: connecting a UDP socket only picks a route. Returns ``None`` when
    no route leads there.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        with contextlib.suppress(OSError):
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        try:
            probe.connect((destination, port))
            address = str(probe.getsockname()[0])
        except OSError:
            return None
    return None if address == "0.0.0.0" else address


async def route_to(url: str, default_port: int) -> str | None:
    """The local address of the route to a server's URL (Redis, etcd), or ``None``.

    Its host name is resolved off the loop (IPv4), and the first address a
    route leads to answers; ``None`` for a Unix socket, a name that does not
    resolve, or no route.
    """
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.scheme == "unix" or not parts.hostname:
        return None
    port = parts.port or default_port
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(
            parts.hostname, port, family=socket.AF_INET, type=socket.SOCK_STREAM
        )
    except OSError as exc:
        log.debug("cannot resolve %s: %s", parts.hostname, exc)
        return None
    for *_, sockaddr in infos:
        found = source_address(str(sockaddr[0]), port)
        if found is not None:
            return found
    return None
