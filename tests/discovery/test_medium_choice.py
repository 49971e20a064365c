"""The medium is chosen in one place: etcd or Redis when set, else UDP (nothing started)."""

from __future__ import annotations

from coterie.discovery.etcd import EtcdTransport
from coterie.discovery.network import DEFAULT_NETWORK, make_transport
from coterie.discovery.options import DiscoveryOptions
from coterie.discovery.redis import RedisTransport
from coterie.discovery.transports import UdpTransport


def test_settings_choose_the_medium() -> None:
    udp = DiscoveryOptions(broadcast="127.255.255.255").resolve({})
    redis = DiscoveryOptions(redis="redis://127.0.0.1:6390").resolve({})
    etcd = DiscoveryOptions(etcd="http://127.0.0.1:2390").resolve({})
    assert type(make_transport(udp)) is UdpTransport
    assert type(make_transport(redis)) is RedisTransport
    assert type(make_transport(etcd)) is EtcdTransport


def test_the_default_network_chooses_the_same_way() -> None:
    redis = DiscoveryOptions(redis="redis://127.0.0.1:6390").resolve({})
    assert type(DEFAULT_NETWORK.discovery_transport(redis)) is RedisTransport
    # Bound methods of one network compare equal: components and bare
    # Discovery instances on the default network share one hub.
    assert DEFAULT_NETWORK.discovery_transport == DEFAULT_NETWORK.discovery_transport
