"""The whole network seam: links and the discovery medium, in one object.

Internal, except :class:`Network`, which :mod:`coterie.testing` implements.

Design (after httpx's transport seam): every component reaches the network
through one object with asyncio's own shapes, so a test can swap TCP and UDP
for an in-process medium and keep every other line of coterie, framing and
routing included, unchanged. Links need only its TCP side
(:class:`coterie.transport.network.LinkNetwork`); this module adds the
discovery medium on top, so the transport layer never imports discovery.

:data:`DEFAULT_NETWORK` (a :class:`SocketNetwork`) is what components use
unless given another: real TCP sockets, and UDP, Redis or etcd for discovery
as the settings say. That choice is made here and nowhere else
(:func:`make_transport`); the discovery service's default is this network's.
"""

from __future__ import annotations

from typing import Protocol

from coterie.discovery.medium import DiscoveryTransport
from coterie.discovery.options import DiscoverySettings
from coterie.discovery.transports import UdpTransport
from coterie.transport.network import LinkNetwork, TcpNetwork

__all__ = ["DEFAULT_NETWORK", "Network", "SocketNetwork", "make_transport"]


def make_transport(settings: DiscoverySettings) -> DiscoveryTransport:
    """The medium the settings ask for: etcd or Redis when set, else UDP."""
    if settings.etcd is not None:
        from coterie.discovery.etcd import EtcdTransport

        return EtcdTransport(settings)
    if settings.redis is not None:
        from coterie.discovery.redis import RedisTransport

        return RedisTransport(settings)
    return UdpTransport(settings)


class Network(LinkNetwork, Protocol):
    """What components need from a network: links, and the discovery medium."""

    def discovery_transport(self, settings: DiscoverySettings) -> DiscoveryTransport:
        """The discovery medium for these settings."""


class SocketNetwork(TcpNetwork):
    """Real sockets: TCP links, and UDP, Redis or etcd discovery as the settings say."""

    def discovery_transport(self, settings: DiscoverySettings) -> DiscoveryTransport:
        """UDP broadcast, multicast or unicast, Redis or etcd, by ``settings``."""
        return make_transport(settings)


#: The network components use unless given another.
DEFAULT_NETWORK = SocketNetwork()
