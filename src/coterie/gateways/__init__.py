"""Gateways between the coterie mesh and the rest of the world.

Public modules:

- :mod:`coterie.gateways.sockend`: :class:`~coterie.gateways.sockend.Sockend`,
  the mesh for socket.io clients (needs ``coterie[sockend]``);
- :mod:`coterie.gateways.nginx`: keep a real nginx's upstream equal to the
  announced instances of a service (what ``coterie nginx`` runs);
- :mod:`coterie.gateways.announce`: announce any HTTP process on discovery
  while it lives and answers (what ``coterie announce`` runs).

Internal: the rest (``options``: host-scope discovery options for the command
line; ``process``: stopping child processes), used by the ``coterie`` command.

Submodules are imported on use, so ``announce`` and ``nginx`` work without
aiohttp installed.
"""
