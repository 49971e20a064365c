"""Gateways between coterie and the HTTP world: the payment example's building blocks.

- :mod:`coterie.gateways.cards`: card-number checks (Luhn), pure functions;
- :mod:`coterie.gateways.http`: aiohttp apps for payment and validation, and
  the two ways to reach validation (mesh or HTTP through nginx);
- :mod:`coterie.gateways.announce`: announce any HTTP process on discovery;
- :mod:`coterie.gateways.nginx`: render and reload nginx upstreams from discovery;
- :mod:`coterie.gateways.options`: host-scope discovery options for the CLI.
- :mod:`coterie.gateways.sockend`: :class:`~coterie.gateways.sockend.Sockend`,
  the mesh for socket.io clients (needs ``coterie[sockend]``).

Submodules are imported on use, so ``announce`` and ``nginx`` work without
aiohttp installed.

Public: ``sockend``, ``nginx`` and ``announce``. Internal: the rest.
"""
