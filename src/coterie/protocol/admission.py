"""Who a listening component lets in: the link cap, each source's share, TLS handshakes.

Design: sans-I/O. :class:`Admission` keeps opaque keys (the adapter's link
objects) and their source addresses, and says what to do when a connection
arrives, proves itself, wants a TLS handshake or leaves. It owns no socket
and no clock: the adapter aborts what it is told to evict, starts the
handshakes it is told to start, and times the handshakes out itself.

The rules, against a peer that opens connections and never uses them:

- **The cap.** At most ``limit`` entries at once, links and connections
  still in their TLS handshake together.
- **A share per source.** One source address holds at most ``share`` of
  them; its next connection is refused, whatever else is free.
- **Unproven first.** An entry is *proven* once the adapter says it did
  real work (a complete request served, a status report from a known
  node). At the cap, the oldest unproven entry is evicted to make room for
  the newcomer; only when every entry is proven is the newcomer refused.
- **Few handshakes at once.** A TLS connection starts its handshake only
  once it has sent its first bytes, and then only while fewer than
  ``handshakes`` are in progress, and fewer than ``handshakes_per_source``
  from its source. The others wait in arrival order, holding nothing but
  their socket.
- **Say something soon.** A link that sent no frame within ``idle_timeout``
  seconds of opening is closed (:func:`idle`); while any link is still
  silent, the adapter checks again a quarter of that later.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from typing import Generic, NamedTuple, Protocol, TypeVar

__all__ = ["Admission", "Opened", "Verdict", "idle"]

K = TypeVar("K", bound=Hashable)

#: Defaults: handshakes in progress at once, in all and from one source.
DEFAULT_HANDSHAKES = 16
DEFAULT_HANDSHAKES_PER_SOURCE = 4


class Opened(Protocol):
    """What :func:`idle` reads of a link."""

    @property
    def frames(self) -> int:
        """Frames received on it so far."""
        ...

    @property
    def opened_at(self) -> float:
        """When it opened (the clock of ``now``)."""
        ...


L = TypeVar("L", bound=Opened)


def idle(links: Iterable[L], now: float, timeout: float) -> tuple[list[L], float | None]:
    """The links silent too long since they opened, and when to look again.

    Args:
        links: The open links.
        now: The time, on the clock of their ``opened_at``.
        timeout: Seconds a new link may stay silent before its first frame.

    Returns:
        ``(close, again)``: the links that sent no frame within ``timeout``
        of opening, and the delay before the next check (a quarter of
        ``timeout``) while another link is still silent, else ``None``.
    """
    close: list[L] = []
    waiting = False
    for link in links:
        if link.frames == 0:
            if now - link.opened_at >= timeout:
                close.append(link)
            else:
                waiting = True
    return close, (timeout / 4 if waiting else None)


class Verdict(NamedTuple, Generic[K]):
    """What to do with a connection that arrived.

    Attributes:
        admitted: Whether it may stay.
        evict: An unproven entry to close to make room for it, or ``None``.
        reason: Why it was refused: ``"share"`` (its source holds its
            share) or ``"full"`` (every entry is proven); ``""`` when admitted.
    """

    admitted: bool
    evict: K | None
    reason: str


class Admission(Generic[K]):
    """The accept-time bounds of one listening component (see the module doc).

    Args:
        limit: Most entries at once.
        share: Most entries from one source; ``limit`` when ``None``.
        evict: Whether unproven entries make room for newcomers (off for a
            role whose peers never send, such as a publisher's subscribers).
        handshakes: Most TLS handshakes in progress at once.
        handshakes_per_source: Most of them from one source.
    """

    def __init__(
        self,
        limit: int,
        share: int | None = None,
        *,
        evict: bool = True,
        handshakes: int = DEFAULT_HANDSHAKES,
        handshakes_per_source: int = DEFAULT_HANDSHAKES_PER_SOURCE,
    ) -> None:
        if limit < 1:
            raise ValueError(f"the link cap must be at least 1, got {limit}")
        share = limit if share is None else share
        if not 1 <= share <= limit:
            raise ValueError(f"a source's share must be 1 to {limit}, got {share}")
        if handshakes < 1 or handshakes_per_source < 1:
            raise ValueError("handshakes in progress must be at least 1")
        self.limit = limit
        self.share = share
        self.evicts = evict
        self.handshakes = handshakes
        self.handshakes_per_source = min(handshakes, handshakes_per_source)
        self._source: dict[K, str] = {}
        self._per_source: dict[str, int] = {}
        self._unproven: dict[K, None] = {}  # in arrival order
        self._shaking: dict[K, None] = {}
        self._shaking_per_source: dict[str, int] = {}
        self._waiting: dict[K, None] = {}  # in arrival order
        #: Refused for a source's share, refused at a cap of proven entries, evicted.
        self.refused_share = 0
        self.refused_full = 0
        self.evicted = 0

    def __len__(self) -> int:
        return len(self._source)

    def __contains__(self, key: object) -> bool:
        return key in self._source

    def held_by(self, source: str) -> int:
        """Entries ``source`` holds now."""
        return self._per_source.get(source, 0)

    @property
    def unproven(self) -> int:
        """Entries not proven yet."""
        return len(self._unproven)

    @property
    def in_handshake(self) -> int:
        """TLS handshakes in progress."""
        return len(self._shaking)

    @property
    def waiting(self) -> int:
        """TLS connections whose handshake waits for a free slot."""
        return len(self._waiting)

    # -- arrivals and departures -------------------------------------------------

    def arrive(self, key: K, source: str) -> Verdict[K]:
        """A connection from ``source`` arrived; admit it (maybe evicting one) or refuse it.

        An admitted key is counted at once; an evicted key is no longer
        counted (the adapter closes it, and its :meth:`leave` is a no-op).
        """
        if key in self._source:
            return Verdict(True, None, "")
        if self._per_source.get(source, 0) >= self.share:
            self.refused_share += 1
            return Verdict(False, None, "share")
        evict: K | None = None
        if len(self._source) >= self.limit:
            if not self.evicts or not self._unproven:
                self.refused_full += 1
                return Verdict(False, None, "full")
            evict = next(iter(self._unproven))
            self.evicted += 1
            self.leave(evict)
        self._source[key] = source
        self._per_source[source] = self._per_source.get(source, 0) + 1
        self._unproven[key] = None
        return Verdict(True, evict, "")

    def prove(self, key: K) -> None:
        """``key`` did real work: it is no longer evicted to make room."""
        self._unproven.pop(key, None)

    def proven(self, key: K) -> bool:
        """Whether ``key`` is admitted and proven."""
        return key in self._source and key not in self._unproven

    def leave(self, key: K) -> list[K]:
        """``key`` closed (or was evicted). Returns the handshakes that may start now."""
        source = self._source.pop(key, None)
        if source is None:
            return []
        left = self._per_source[source] - 1
        if left:
            self._per_source[source] = left
        else:
            del self._per_source[source]
        self._unproven.pop(key, None)
        self._waiting.pop(key, None)
        if key in self._shaking:
            return self._release(key, source)
        return []

    def oldest_unproven(self) -> K | None:
        """The entry that would be evicted next, if any."""
        return next(iter(self._unproven), None)

    # -- TLS handshakes ------------------------------------------------------------

    def want_handshake(self, key: K) -> bool:
        """``key`` sent its first bytes: ``True`` if its handshake may start now.

        Otherwise it waits; :meth:`handshake_over` and :meth:`leave` return
        it once a slot is free.
        """
        source = self._source.get(key)
        if source is None or key in self._shaking:
            return False
        if self._slot_free(source):
            self._take(key, source)
            return True
        self._waiting[key] = None
        return False

    def handshake_over(self, key: K) -> list[K]:
        """``key``'s handshake ended (either way). Returns the handshakes that may start now."""
        source = self._source.get(key)
        if source is None or key not in self._shaking:
            return []
        return self._release(key, source)

    def _slot_free(self, source: str) -> bool:
        return (
            len(self._shaking) < self.handshakes
            and self._shaking_per_source.get(source, 0) < self.handshakes_per_source
        )

    def _take(self, key: K, source: str) -> None:
        self._shaking[key] = None
        self._shaking_per_source[source] = self._shaking_per_source.get(source, 0) + 1

    def _release(self, key: K, source: str) -> list[K]:
        del self._shaking[key]
        left = self._shaking_per_source[source] - 1
        if left:
            self._shaking_per_source[source] = left
        else:
            del self._shaking_per_source[source]
        started: list[K] = []
        for waiting in list(self._waiting):
            if len(self._shaking) >= self.handshakes:
                break
            waiting_source = self._source[waiting]
            if self._slot_free(waiting_source):
                del self._waiting[waiting]
                self._take(waiting, waiting_source)
                started.append(waiting)
        return started
