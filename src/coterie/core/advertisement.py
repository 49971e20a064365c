"""Advertisements and cote's pairing rules (sans-I/O).

Design: an advertisement is the JSON object a component announces. This module
builds one the way cote rewrites it (environment-prefixed ``key``, the role in
``axon_type``, ``type`` defaulting to ``"service"``) and decides whether two
components pair, using cote's exact rule: opposite roles, equal keys, and
namespaces equal under JavaScript's loose equality (missing equals ``null``,
but not ``""``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

__all__ = ["build_advertisement", "environment_prefix", "pairs", "serves"]


def environment_prefix(environment: str | None) -> str:
    """``"<env>:"`` for a set environment, else ``""``; defaults to ``COTE_ENV``."""
    env = os.environ.get("COTE_ENV", "") if environment is None else environment
    return f"{env}:" if env else ""


def build_advertisement(
    role: str,
    *,
    name: str | None,
    namespace: str | None,
    key: str | None,
    environment: str | None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Build an advertisement as cote does.

    Args:
        role: ``req``, ``rep``, ``pub-emitter``, ``sub-emitter``, or ``None``-like
            roles such as the monitor's (then no ``axon_type``).
        name: Human name; Node peers need a string, so one is always sent.
        namespace: Namespace, or ``None``.
        key: Advertisement key (not encryption), or ``None``.
        environment: Environment, or ``None`` to read ``COTE_ENV``.
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


def pairs(mine: Mapping[str, Any], theirs: Mapping[str, Any], opposite: str) -> bool:
    """cote's pairing rule: opposite role, same key, same namespace."""
    return (
        theirs.get("axon_type") == opposite
        and theirs.get("key") == mine.get("key")
        and theirs.get("namespace") == mine.get("namespace")
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
