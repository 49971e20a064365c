"""What a discovery medium offers: the typed protocols every transport meets.

Design: a transport moves opaque datagrams and nothing else. Packet parsing,
encryption and the node table live above it, in
:mod:`coterie.discovery.service`, so a new medium is one small class that
meets :class:`DiscoveryTransport`. Pass one to a component as
``transport_factory`` to plug it in.

Two abilities are optional, each a runtime-checkable protocol of its own, so
the service asks ``isinstance(transport, Announcing)`` rather than probing
for attribute names:

- :class:`Announcing`: datagrams leave from known local addresses, and each
  hello should name the one it leaves from (UDP on a host with several
  interfaces; Redis, the route to the server);
- :class:`Unicasting`: hellos can be sent to a list of addresses that changes
  while it runs (the addresses DNS seeds resolve to);
- :class:`Registry`: the medium keeps one entry per component and reports
  departures itself (leases), so the service gives it a
  :class:`Registration` (the component's id and advertisement, and two
  callbacks) and never times its nodes out for silence. A registry stays
  opaque too: the service hands it a hello only when the hello changed
  (``send_each``'s encoder returns ``None`` otherwise), sends it no goodbye
  (closing unregisters), and hears of departures through the
  registration's ``depart``;
- :class:`Scoped`: the medium carries each group (environment and
  namespace, :mod:`coterie.protocol.groups`) apart, so it needs the
  component's advertisement before it starts (Redis with one channel per
  group).

The built-in media: :class:`~coterie.discovery.transports.UdpTransport`
(announcing, unicasting), :class:`~coterie.discovery.redis.RedisTransport`
(announcing) and :class:`~coterie.discovery.etcd.EtcdTransport` (announcing,
a registry).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

__all__ = [
    "Announcing",
    "DiscoveryTransport",
    "Encoder",
    "ReceiveCallback",
    "Registration",
    "Registry",
    "Scoped",
    "Unicasting",
]

#: Called with each datagram received and its source address ("0.0.0.0"
#: when the medium carries none).
ReceiveCallback = Callable[[bytes, str], None]

#: Encodes one hello for the address it will announce; ``None`` skips it.
Encoder = Callable[[str], bytes | None]


@runtime_checkable
class DiscoveryTransport(Protocol):
    """What the discovery service needs from a medium."""

    async def start(self, receive: ReceiveCallback) -> None:
        """Begin receiving; ``receive(data, source_address)`` per datagram."""

    def send(self, data: bytes) -> None:
        """Send one datagram to every destination (best effort, never raises)."""

    async def close(self) -> None:
        """Stop receiving and release the medium."""


@runtime_checkable
class Announcing(DiscoveryTransport, Protocol):
    """A medium whose datagrams leave from known local addresses."""

    def send_each(self, encode: Encoder) -> None:
        """Send ``encode(local_address)`` from each local address datagrams leave from.

        So every hello names the address it leaves from; a ``None`` result
        sends nothing from that address.
        """


@runtime_checkable
class Unicasting(DiscoveryTransport, Protocol):
    """A medium that can send hellos to a changing list of addresses."""

    def set_unicast(self, addresses: tuple[str, ...]) -> None:
        """Send to these addresses too, besides any static list (resolved seeds)."""


@dataclass(frozen=True, eq=False)
class Registration:
    """What a registry medium knows of the one component it registers.

    Attributes:
        iid: The component's instance id (its key names it).
        advertisement: Its advertisement (its group, by reference).
        depart: Called with a registered node's id when it leaves (its key
            removed, its lease expired): the component drops it now.
        knows: Whether the component still lists a node; one it dropped (a
            link that broke) is handed back from the registry's copy.
    """

    iid: str
    advertisement: dict[str, Any]
    depart: Callable[[str], None]
    knows: Callable[[str], bool]


@runtime_checkable
class Registry(Announcing, Protocol):
    """A medium that registers each component and reports its departure itself.

    ``send_each`` is called on every hello tick; its encoder gives the hello
    to register, or ``None`` when it has not changed since the last one.
    """

    def attach(self, registration: Registration) -> None:
        """Serve this component; called once, before ``start``."""


@runtime_checkable
class Scoped(DiscoveryTransport, Protocol):
    """A medium that may carry each group of the mesh apart."""

    def scope(self, advertisement: dict[str, Any]) -> Hashable:
        """Take the component's advertisement (its group); called before ``start``.

        Returns:
            What this transport carries, as a hashable value: components
            whose transports answer alike share one (``None``: all alike).
        """
