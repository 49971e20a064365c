"""Discovery groups: which nodes need to hear of which (pure).

Design: a component pairs only with components of its environment and
namespace, and reports only to monitors of its environment. A medium that
can carry each group apart (etcd's key prefixes, Redis channels) uses these
names, so a node hears of its own group and nothing else:

- a *component* (a node with a pairing role) belongs to its environment and
  namespace, and also hears the *observers* of its environment;
- an *observer* (a node without a pairing role: monitors, gateways) hears
  the whole environment.

The names are percent-encoded, so ``*`` (no namespace) and ``+`` (the
observers) cannot be spelt by any namespace.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

__all__ = ["NO_NAMESPACE", "OBSERVERS", "group_of", "is_observer"]

#: The group segment of components with no namespace.
NO_NAMESPACE = "*"
#: The group segment of observers.
OBSERVERS = "+"
_ROLES = ("req", "rep", "pub-emitter", "sub-emitter")


def _environment(advertisement: dict[str, Any]) -> str:
    key = advertisement.get("key")
    if not isinstance(key, str) or "$$" not in key:
        return ""
    return key.split("$$", 1)[0].removesuffix(":")


def is_observer(advertisement: dict[str, Any]) -> bool:
    """A node without a pairing role (a monitor, a gateway): it hears its whole environment."""
    return advertisement.get("axon_type") not in _ROLES


def group_of(advertisement: dict[str, Any]) -> tuple[str, str]:
    """``(environment, group)`` of a node, percent-encoded.

    The environment is the part of the advertisement key before ``$$``; the
    group is the namespace, ``*`` without one, or ``+`` for an observer.
    """
    env = quote(_environment(advertisement), safe="")
    if is_observer(advertisement):
        return env, OBSERVERS
    namespace = advertisement.get("namespace")
    if namespace is None or namespace == "":
        return env, NO_NAMESPACE
    return env, quote(str(namespace), safe="")
