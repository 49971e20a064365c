"""Advertisements and cote's pairing rules (sans-I/O).

Design: an advertisement is the JSON object a component announces. This module
builds one the way cote rewrites it (environment-prefixed ``key``, the role in
``axon_type``, ``type`` defaulting to ``"service"``) and decides whether two
components pair, using cote's exact rule: opposite roles, equal keys, and
namespaces equal under JavaScript's loose equality (missing equals ``null``,
but not ``""``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = [
    "build_advertisement",
    "environment_prefix",
    "pairs",
    "reports_to",
    "same_link_security",
    "serves",
]


def environment_prefix(environment: str) -> str:
    """``"<env>:"`` for a set environment, else ``""``."""
    return f"{environment}:" if environment else ""


def build_advertisement(
    role: str,
    *,
    name: str | None,
    namespace: str | None,
    key: str | None,
    environment: str,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Build an advertisement as cote does.

    Args:
        role: ``req``, ``rep``, ``pub-emitter``, ``sub-emitter``, or ``None``-like
            roles such as the monitor's (then no ``axon_type``).
        name: Human name; Node peers need a string, so one is always sent.
        namespace: Namespace, or ``None``.
        key: Advertisement key (not encryption), or ``None``.
        environment: Environment (``COTE_ENV``, resolved by :mod:`coterie.settings`).
        extra: More fields (``respondsTo``, ``broadcasts``, ``subset``, ...).
    """
    adv: dict[str, Any] = {"type": "service", "name": name or f"{role} component"}
    if namespace is not None:
        adv["namespace"] = namespace
    if extra:
        adv.update(extra)
    adv["key"] = environment_prefix(environment) + "$$" + (key or "")
    if role:
        adv["axon_type"] = role
    return adv


def same_link_security(mine: Mapping[str, Any], theirs: Mapping[str, Any]) -> bool:
    """Both run mutual TLS on their links, or neither does.

    A component with TLS advertises ``tls``; it pairs only with peers that do
    too, and one without skips peers that demand it (they would refuse it).
    Node cote never advertises ``tls``.
    """
    return mine.get("tls") == theirs.get("tls")


def pairs(mine: Mapping[str, Any], theirs: Mapping[str, Any], opposite: str) -> bool:
    """The one pairing rule, used by requesters, subscribers and the Sockend.

    cote's rule (opposite role, same key, same namespace) plus the same link
    security (:func:`same_link_security`).
    """
    return (
        theirs.get("axon_type") == opposite
        and theirs.get("key") == mine.get("key")
        and theirs.get("namespace") == mine.get("namespace")
        and same_link_security(mine, theirs)
    )


def reports_to(mine: Mapping[str, Any], theirs: Mapping[str, Any]) -> bool:
    """Whether a component sends status reports to the node ``theirs``.

    cote's rule: the node is a monitor whose key is a prefix of ours (so a
    monitor with the bare key ``"$$"`` sees every component of its
    environment), and, beyond cote, the same link security.
    """
    key, their_key = mine.get("key"), theirs.get("key")
    return (
        theirs.get("type") == "monitor"
        and isinstance(key, str)
        and isinstance(their_key, str)
        and key.startswith(their_key)
        and same_link_security(mine, theirs)
    )


def serves(advertisement: Mapping[str, Any], request_type: Any) -> bool:
    """Whether a responder takes a request type: yes unless it lists others.

    Responders that advertise no ``respondsTo`` list (Node peers) take any
    type, as in cote.
    """
    responds_to = advertisement.get("respondsTo")
    if not isinstance(responds_to, list):
        return True
    return request_type in responds_to or "*" in responds_to
