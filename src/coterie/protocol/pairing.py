"""Advertisements and cote's pairing rules (sans-I/O).

Design: an advertisement is the JSON object a component announces. This module
builds one the way cote rewrites it (environment-prefixed ``key``, the role in
``axon_type``, ``type`` defaulting to ``"service"``) and decides whether two
components pair, using cote's exact rule: opposite roles, equal keys, and
namespaces equal under JavaScript's loose equality (missing equals ``null``,
but not ``""``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from coterie.protocol.patterns import matches_any

__all__ = [
    "EXPOSED_ROLES",
    "MISMATCH_FIELDS",
    "PAIRING_ROLES",
    "ROLE_NAMES",
    "Mismatch",
    "advertised_names",
    "build_advertisement",
    "describe",
    "environment_prefix",
    "explain",
    "exposes",
    "lists_types",
    "pairs",
    "reports_to",
    "role_of",
    "same_link_security",
    "serves",
    "split_key",
    "takes",
    "unserved",
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
    type, as in cote. A listed pattern takes what its handler would
    (:func:`coterie.protocol.patterns.matches`): ``**`` every type,
    ``orders::*`` that family, ``*`` every type without ``::``.
    """
    responds_to = advertisement.get("respondsTo")
    if not isinstance(responds_to, list):
        return True
    if request_type in responds_to:
        return True
    return isinstance(request_type, str) and matches_any(
        (t for t in responds_to if isinstance(t, str)), request_type
    )


def advertised_names(value: Any) -> frozenset[str]:
    """The names of an advertised list (``respondsTo``, ``broadcasts``): its non-empty strings.

    Anything that is not a list gives none; entries that are not strings are
    skipped (a hostile hello cannot make a gateway expose ``None`` or ``1``).
    """
    if not isinstance(value, list):
        return frozenset()
    return frozenset(v for v in value if isinstance(v, str) and v)


def lists_types(advertisement: Mapping[str, Any]) -> bool:
    """Whether a responder advertises the types it serves (a ``respondsTo`` list).

    A gateway exposes only these, as cote's Sockend: a responder without the
    list (it takes any type, see :func:`serves`) says nothing a gateway could
    show its clients, so the gateway does not link to it.
    """
    return isinstance(advertisement.get("respondsTo"), list)


def takes(types: frozenset[str], request_type: Any) -> bool:
    """Whether a responder listing ``types`` takes ``request_type`` (patterns: :func:`serves`)."""
    if request_type in types:
        return True
    return isinstance(request_type, str) and matches_any(types, request_type)


#: The roles a gateway exposes: responders (requests) and publishers (relays).
EXPOSED_ROLES = frozenset({"rep", "pub-emitter"})


def exposes(gateway: Mapping[str, Any], theirs: Mapping[str, Any]) -> bool:
    """Whether a gateway (the Sockend) exposes the node ``theirs`` to its clients.

    The node must have the gateway's key (environment included), be a
    responder or a publisher (:data:`EXPOSED_ROLES`), have the same link
    security (the requester or subscriber the gateway starts would not pair
    with it otherwise) and a namespace that is a string or none. Its
    namespace is not compared: a gateway serves every namespace.
    """
    namespace = theirs.get("namespace")
    return (
        theirs.get("key") == gateway.get("key")
        and theirs.get("axon_type") in EXPOSED_ROLES
        and same_link_security(gateway, theirs)
        and (namespace is None or isinstance(namespace, str))
    )


#: What each pairing check is called in :class:`Mismatch` (the order they are tried).
MISMATCH_FIELDS = ("role", "environment", "key", "namespace", "link security")


class Mismatch:
    """One reason two components do not pair: the field, their value and ours.

    ``str()`` gives a sentence for people that says what differs, in the
    words a user configured (environment, key and namespace as given, not as
    cote encodes them in the advertisement's ``key``).

    Attributes:
        field: One of :data:`MISMATCH_FIELDS`.
        mine: This component's value (``None`` when unset).
        theirs: The other node's value (``None`` when unset).
    """

    __slots__ = ("field", "mine", "theirs")

    def __init__(self, field: str, mine: Any, theirs: Any) -> None:
        self.field = field
        self.mine = mine
        self.theirs = theirs

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Mismatch) and (self.field, self.mine, self.theirs) == (
            other.field,
            other.mine,
            other.theirs,
        )

    def __hash__(self) -> int:
        return hash((self.field, repr(self.mine), repr(self.theirs)))

    def __repr__(self) -> str:
        return f"Mismatch({self.field!r}, mine={self.mine!r}, theirs={self.theirs!r})"

    def __str__(self) -> str:
        return self.clause("this one")

    def clause(self, me: str) -> str:
        """The difference as a clause: theirs first, then ``me`` (e.g. ``"this requester"``)."""
        if self.field == "link security":
            if self.theirs:
                return f"with mutual TLS on its links; {me} is plaintext (give it tls= or secret=)"
            return f"without TLS on its links; {me} runs mutual TLS, so they cannot link"
        if self.field == "role":
            return f"as a {_role_word(self.theirs)}; {me} is a {_role_word(self.mine)}"
        if self.field == "key":
            return f"with key {_said(self.theirs)}; {me} has key {_said(self.mine)}"
        return f"in {self.field} {_said(self.theirs)}; {me} is in {_said(self.mine)}"


def _said(value: Any) -> str:
    return "none" if value is None or value == "" else repr(value)


def describe(theirs: Mapping[str, Any], mismatches: list[Mismatch], me: str) -> str:
    """One sentence on a node that does not pair, in the words a user configured.

    For example ``a responder named 'validation service' is on the mesh in
    namespace 'payment'; this requester is in 'payments'``.

    Args:
        theirs: The other node's advertisement.
        mismatches: What :func:`explain` found for it (at least one).
        me: How to call this side, e.g. ``"this requester"``.
    """
    name = theirs.get("name")
    who = f"a {_role_word(theirs.get('axon_type'))} named {name!r}" if name else "a node"
    clauses = "; and ".join(m.clause(me) for m in mismatches)
    return f"{who} is on the mesh {clauses}"


def _role_word(role: Any) -> str:
    return ROLE_NAMES.get(role, "component") if isinstance(role, str) else "component"


def split_key(advertised: Any) -> tuple[str | None, str | None]:
    """Split an advertised ``key`` into (environment, key) as the user gave them.

    cote advertises ``"<env>:$$<key>"`` (``"$$<key>"`` without an environment).
    A key that does not have that shape (a hand-written or foreign one) comes
    back whole as the key, with no environment.
    """
    if not isinstance(advertised, str):
        return None, None
    prefix, sep, key = advertised.partition("$$")
    if not sep:
        return None, advertised
    if prefix and not prefix.endswith(":"):
        return None, advertised
    return (prefix[:-1] or None), (key or None)


def explain(mine: Mapping[str, Any], theirs: Mapping[str, Any], opposite: str) -> list[Mismatch]:
    """Why ``mine`` does not pair with ``theirs``: empty exactly when :func:`pairs` is true.

    Each failing part of the pairing rule gives one :class:`Mismatch`, in the
    order of :data:`MISMATCH_FIELDS`. The advertised key is split back into
    environment and key (:func:`split_key`), so a wrong ``COTE_ENV`` and a
    wrong ``key=`` read differently. A test checks over generated
    advertisements that this and :func:`pairs` agree.
    """
    found: list[Mismatch] = []
    if theirs.get("axon_type") != opposite:
        found.append(Mismatch("role", mine.get("axon_type"), theirs.get("axon_type")))
    if theirs.get("key") != mine.get("key"):
        my_env, my_key = split_key(mine.get("key"))
        their_env, their_key = split_key(theirs.get("key"))
        if my_env != their_env:
            found.append(Mismatch("environment", my_env, their_env))
        if my_key != their_key or my_env == their_env:
            found.append(Mismatch("key", my_key, their_key))
    if theirs.get("namespace") != mine.get("namespace"):
        found.append(Mismatch("namespace", mine.get("namespace"), theirs.get("namespace")))
    if not same_link_security(mine, theirs):
        found.append(Mismatch("link security", mine.get("tls"), theirs.get("tls")))
    return found


def unserved(
    mine: Mapping[str, Any],
    others: Iterable[Mapping[str, Any]],
    opposite: str,
    request_type: Any = None,
    *,
    me: str,
    limit: int = 3,
) -> list[str]:
    """Sentences on the nodes that would take this work but do not pair.

    What a requester (or ``coterie doctor``) says when nothing answers: each
    node of the ``opposite`` role that serves ``request_type`` (any type when
    ``None``) but fails :func:`pairs`, worded by :func:`describe`. Nodes of
    other roles are left out: a publisher is not a missing responder.

    Args:
        mine: This component's advertisement.
        others: Advertisements of every node discovery knows.
        opposite: The role that would do the work (``rep`` for a requester).
        request_type: The request type, or ``None`` for any.
        me: How to call this side, e.g. ``"this requester"``.
        limit: At most this many sentences (the first nodes in ``others``).
    """
    said: list[str] = []
    for theirs in others:
        if theirs.get("axon_type") != opposite:
            continue
        if request_type is not None and not serves(theirs, request_type):
            continue
        mismatches = explain(mine, theirs, opposite)
        if mismatches:
            said.append(describe(theirs, mismatches, me))
            if len(said) >= limit:
                break
    return said


#: Human role names by ``axon_type``: cote's four pairing roles, and the
#: Sockend's, which pairs with none (it watches the mesh).
ROLE_NAMES = {
    "req": "requester",
    "rep": "responder",
    "pub-emitter": "publisher",
    "sub-emitter": "subscriber",
    "sockend": "sockend",
}
#: The ``axon_type`` values that pair; a node with another or none observes.
PAIRING_ROLES = frozenset(ROLE_NAMES) - {"sockend"}


def role_of(advertisement: Mapping[str, Any]) -> str:
    """A component's role for people and metrics: requester, responder, ..., monitor."""
    axon_type = advertisement.get("axon_type")
    if isinstance(axon_type, str):
        return ROLE_NAMES.get(axon_type, axon_type)
    kind = advertisement.get("type")
    return kind if isinstance(kind, str) and kind != "service" else "unknown"
