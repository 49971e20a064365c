"""Outlier ejection, after Envoy's: a peer that keeps failing leaves the rotation (sans-I/O).

The rule:

- a peer *fails* when a request outlives the attempt bound there, when it
  sends a frame that cannot be decoded, or when its link dies of silence
  (the router and the requester report each one);
- after :data:`EJECT_AFTER` consecutive failures, while another peer still
  takes work, it is *ejected*: out of the rotation for a back-off of
  :data:`EJECT_FIRST` seconds, doubling to :data:`EJECT_MAX` (the back-off
  rule of :mod:`coterie.protocol.backoff`);
- once the back-off is over it takes one *probe* request: an answer puts it
  back (failures and back-off start over), a failure ejects it again for
  twice as long;
- any answer resets its failures.

:class:`Ejection` keeps one :class:`Health` record per peer, which outlives
the peer's links (a peer that reconnects is still ejected), and only decides;
:class:`~coterie.protocol.routing.Router` asks it which peers may take work.
Time is an argument: nothing here reads a clock.
"""

from __future__ import annotations

from collections.abc import Callable

from coterie.protocol.backoff import Backoff

__all__ = ["EJECT_AFTER", "EJECT_FIRST", "EJECT_MAX", "Ejection", "Health"]

#: Consecutive failures that eject a peer from the rotation.
EJECT_AFTER = 3
#: Ejection back-off: first, and largest, in seconds.
EJECT_FIRST, EJECT_MAX = 1.0, 30.0


class Health:
    """One peer's record for outlier ejection."""

    __slots__ = ("backoff", "ejected_until", "failures", "probing")

    def __init__(self) -> None:
        self.failures = 0
        #: While ejected: when its back-off ends; else ``None``.
        self.ejected_until: float | None = None
        self.backoff = Backoff(EJECT_FIRST, EJECT_MAX)
        #: A probe request is in flight after an ejection.
        self.probing = False


class Ejection:
    """Which peers are out of the rotation, and for how long.

    Args:
        after: Consecutive failures that eject a peer.
    """

    __slots__ = ("_records", "after", "ejected_n", "ejections")

    def __init__(self, after: int = EJECT_AFTER) -> None:
        if after < 1:
            raise ValueError(f"ejection needs at least one failure, got after={after!r}")
        self.after = after
        self._records: dict[str, Health] = {}
        #: How many records are ejected now (callers skip every check at 0).
        self.ejected_n = 0
        #: Peers taken out of the rotation so far.
        self.ejections = 0

    def record(self, peer: str) -> Health:
        """``peer``'s record, made on first use."""
        health = self._records.get(peer)
        if health is None:
            health = self._records[peer] = Health()
        return health

    def get(self, peer: str) -> Health | None:
        """``peer``'s record, if it has one."""
        return self._records.get(peer)

    def drop(self, peer: str) -> None:
        """``peer`` is gone for good: forget its record."""
        gone = self._records.pop(peer, None)
        if gone is not None and gone.ejected_until is not None:
            self.ejected_n -= 1

    @staticmethod
    def is_out(health: Health, now: float) -> bool:
        """Whether the peer is ejected and its back-off is not over at ``now``."""
        return health.ejected_until is not None and health.ejected_until > now

    @staticmethod
    def may_probe(health: Health, now: float) -> bool:
        """An ejected peer whose back-off is over takes one probe: marks it sent."""
        until = health.ejected_until
        if until is None or until > now or health.probing:
            return False
        health.probing = True
        return True

    def failed(self, health: Health, now: float, others: Callable[[], bool]) -> None:
        """The peer failed a request (see the module doc).

        Args:
            health: Its record.
            now: The time, in seconds.
            others: Whether another peer still takes work: the last one is
                never ejected. Asked only when the peer would be.
        """
        health.failures += 1
        if health.probing:  # the probe failed: out again, for longer
            health.probing = False
            health.ejected_until = now + health.backoff.failed(1.0)
            return
        if health.ejected_until is not None or health.failures < self.after:
            return
        if not others():
            return
        health.ejected_until = now + health.backoff.failed(1.0)
        self.ejected_n += 1
        self.ejections += 1

    def recovered(self, health: Health) -> None:
        """The peer answered: back in the rotation, failures and back-off start over."""
        if health.ejected_until is not None:
            self.ejected_n -= 1
        health.failures = 0
        health.probing = False
        health.ejected_until = None
        health.backoff.reset()
