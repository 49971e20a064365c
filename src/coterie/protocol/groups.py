"""Discovery groups and the registry's key layout: which nodes hear of which (sans-I/O).

Design: a component pairs only with components of its environment and
namespace, and reports only to monitors of its environment. A medium that
can carry each group apart (etcd's key prefixes, Redis channels) uses these
names, so a node hears of its own group and nothing else:

- a *component* (a node with a pairing role,
  :data:`~coterie.protocol.pairing.PAIRING_ROLES`) belongs to its
  environment and namespace, and also hears the *observers* of its
  environment;
- an *observer* (a node without a pairing role: monitors, gateways) hears
  the whole environment.

The environment is read from the advertised key with the pairing module's
one split (:func:`~coterie.protocol.pairing.split_key`). The names are
percent-encoded, so ``*`` (no namespace) and ``+`` (the observers) cannot be
spelt by any namespace.

The etcd registry (:mod:`coterie.discovery.etcd`) lays its keys out by
group: a node registers at :func:`node_key`, watches
:func:`watched_prefixes` (each read as the key range up to
:func:`range_end`), under a lease of :func:`lease_ttl` seconds. Its entry
is written again only when its hello says something new (:class:`Entry`).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from typing import Any

from coterie.protocol.pairing import PAIRING_ROLES, split_key

__all__ = [
    "NO_NAMESPACE",
    "OBSERVERS",
    "Entry",
    "group_of",
    "is_observer",
    "lease_ttl",
    "node_key",
    "range_end",
    "watched_prefixes",
]

#: The group segment of components with no namespace.
NO_NAMESPACE = "*"
#: The group segment of observers.
OBSERVERS = "+"
#: The shortest lease, in seconds: a lease is kept alive every third of it.
MIN_LEASE = 2


def is_observer(advertisement: dict[str, Any]) -> bool:
    """A node without a pairing role (a monitor, a gateway): it hears its whole environment."""
    return advertisement.get("axon_type") not in PAIRING_ROLES


def group_of(advertisement: dict[str, Any]) -> tuple[str, str]:
    """``(environment, group)`` of a node, percent-encoded.

    The environment is the part of the advertisement key before ``$$``
    (:func:`~coterie.protocol.pairing.split_key`), ``""`` without one; the
    group is the namespace, ``*`` without one, or ``+`` for an observer.
    """
    # Imported here: urllib.parse (and what it loads) only where groups are used.
    from urllib.parse import quote

    environment, _key = split_key(advertisement.get("key"))
    env = quote(environment or "", safe="")
    if is_observer(advertisement):
        return env, OBSERVERS
    namespace = advertisement.get("namespace")
    if namespace is None or namespace == "":
        return env, NO_NAMESPACE
    return env, quote(str(namespace), safe="")


def node_key(prefix: str, advertisement: dict[str, Any], iid: str) -> str:
    """The key a node registers under: ``<prefix>/<environment>/<group>/<iid>``."""
    env, group = group_of(advertisement)
    return f"{prefix.rstrip('/')}/{env}/{group}/{iid}"


def watched_prefixes(prefix: str, advertisement: dict[str, Any]) -> tuple[str, ...]:
    """The prefixes a node watches: its group and the observers, or its whole environment."""
    env, group = group_of(advertisement)
    root = f"{prefix.rstrip('/')}/{env}/"
    if group == OBSERVERS:
        return (root,)
    return (f"{root}{group}/", f"{root}{OBSERVERS}/")


def range_end(prefix: bytes) -> bytes:
    """The range end that covers every key starting with ``prefix`` (etcd's rule).

    The prefix with its last byte below 0xFF raised by one (trailing 0xFF
    bytes dropped); one zero byte (every key) when no byte can be raised.
    """
    raw = bytearray(prefix)
    while raw and raw[-1] == 0xFF:
        raw.pop()
    if not raw:
        return b"\0"
    raw[-1] += 1
    return bytes(raw)


def lease_ttl(node_timeout_ms: float) -> int:
    """The lease a node's key lives under, in whole seconds: its discovery timeout, rounded up.

    At least :data:`MIN_LEASE` s, so a keep-alive every third of it stays
    well apart from the next.
    """
    return max(MIN_LEASE, math.ceil(node_timeout_ms / 1000))


class Entry:
    """A node's one entry in a registry: written again only when its hello changes.

    A registry holds one value per node, so a hello that says nothing new
    (the same advertisement, master flag and address) is not written again;
    the hello interval then costs the registry nothing.
    """

    __slots__ = ("_held",)

    def __init__(self) -> None:
        self._held: dict[str, Any] | None = None

    def changed(self, data: Mapping[str, Any]) -> bool:
        """Whether the hello ``data`` differs from the entry's; if so the entry takes it.

        The entry keeps a deep copy: an advertisement changed in place later
        still reads as a change.
        """
        if data == self._held:
            return False
        self._held = copy.deepcopy(dict(data))
        return True
