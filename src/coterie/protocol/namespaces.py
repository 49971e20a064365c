"""Which namespaces a gateway serves: a cap, and reaping the idle ones (sans-I/O).

Design: the Sockend (:mod:`coterie.gateways.sockend`) runs a requester and a
subscriber for each cote namespace it discovers, and anyone on the network
can announce a namespace. :class:`NamespaceLife` holds the two rules with the
clock passed in, so the adapter only opens, closes and logs:

- **cap**: at most ``max_namespaces`` namespaces are served besides the
  pinned ones; :meth:`NamespaceLife.admit` refuses any more;
- **idle**: a namespace none of whose nodes has been seen for
  ``node_timeout`` seconds is idle (:meth:`NamespaceLife.idle`); the adapter
  closes what it runs there and forgets it (:meth:`NamespaceLife.forget`).

Pinned namespaces (those the application lists) are always admitted, never
counted against the cap and never idle. ``None`` (no namespace) and ``""``
are different namespaces, as in cote's pairing rule.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["Namespace", "NamespaceLife"]

#: A cote namespace: a string, or ``None`` for none.
Namespace = str | None


class NamespaceLife:
    """The namespaces served now and when a node of each was last seen.

    Args:
        node_timeout: Seconds without a node of a namespace after which it
            is idle (the discovery's node timeout).
        max_namespaces: Most namespaces served at once, pinned ones aside.
        pinned: Namespaces always served and never idle.
    """

    def __init__(
        self, *, node_timeout: float, max_namespaces: int, pinned: Iterable[Namespace] = ()
    ) -> None:
        if not node_timeout > 0:
            raise ValueError(f"node_timeout must be positive seconds, got {node_timeout!r}")
        if isinstance(max_namespaces, bool) or not isinstance(max_namespaces, int):
            raise TypeError(f"max_namespaces must be an int, got {max_namespaces!r}")
        if max_namespaces < 0:
            raise ValueError(f"max_namespaces must be 0 or more, got {max_namespaces}")
        self.node_timeout = node_timeout
        self.max_namespaces = max_namespaces
        self.pinned: frozenset[Namespace] = frozenset(pinned)
        self._last_seen: dict[Namespace, float] = {}

    def __contains__(self, namespace: object) -> bool:
        return namespace in self.pinned or namespace in self._last_seen

    def __len__(self) -> int:
        """How many namespaces count against the cap now."""
        return len(self._last_seen)

    @property
    def full(self) -> bool:
        """Whether a new unpinned namespace would be refused."""
        return len(self._last_seen) >= self.max_namespaces

    def admit(self, namespace: Namespace, when: float) -> bool:
        """Whether ``namespace`` may be served; if so, a node of it counts as seen at ``when``.

        Pinned and already admitted namespaces are always admitted; a new
        one only while fewer than ``max_namespaces`` are.
        """
        if namespace in self.pinned:
            return True
        if namespace not in self._last_seen:
            if self.full:
                return False
            self._last_seen[namespace] = when
            return True
        self.seen(namespace, when)
        return True

    def seen(self, namespace: Namespace, when: float) -> None:
        """A node of ``namespace`` was heard from at ``when`` (ignored if not admitted)."""
        last = self._last_seen.get(namespace)
        if last is not None and when > last:
            self._last_seen[namespace] = when

    def last_seen(self, namespace: Namespace) -> float | None:
        """When a node of an admitted namespace was last seen (``None``: pinned or unknown)."""
        return self._last_seen.get(namespace)

    def idle(self, now: float) -> list[Namespace]:
        """The admitted namespaces no node of which was seen for more than the timeout.

        They stay admitted until :meth:`forget`; pinned ones are never idle.
        """
        limit = now - self.node_timeout
        return [ns for ns, last in self._last_seen.items() if last < limit]

    def forget(self, namespace: Namespace) -> None:
        """Stop counting ``namespace`` (it was closed); it may be admitted again."""
        self._last_seen.pop(namespace, None)
