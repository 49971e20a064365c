"""Zero-configuration discovery, byte-compatible with cote 1.2.0 (node-discover).

Internal: import :class:`~coterie.DiscoveryOptions` and
:class:`~coterie.DiscoveryTransport` from :mod:`coterie`. This package is the
asyncio side (the service, the UDP and Redis transports, options); packets and
the node table are sans-I/O in :mod:`coterie.protocol`.
"""
