"""TCP links between components (asyncio adapters).

Internal: not part of the public API.

- :mod:`~coterie.transport.link`: one framed TCP connection, an
  ``asyncio.Protocol`` that feeds :mod:`coterie.protocol.framing` and batches
  writes;
- :mod:`~coterie.transport.peers`: one :class:`~coterie.transport.peers.Peer`
  per discovered node, its link kept up while the node lives.
"""
