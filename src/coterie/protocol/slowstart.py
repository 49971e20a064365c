"""Slow start, after Envoy's: a newly linked peer takes a small share of requests (sans-I/O).

The rule: a peer whose link just came up has answered nothing yet, so
nothing says it works. Until it has answered :data:`SLOW_START_ANSWERS`
requests on this link, it may hold at most ``1 + answered`` requests in
flight (one at first, one more per answer: a working peer ramps up in a few
round trips). A peer that takes work and never answers therefore holds one
request at a time, each of which outlives the attempt bound and counts a
failure, until outlier ejection (:mod:`coterie.protocol.ejection`) takes it
out: a few requests delayed, not a share of the whole load.

Slow start is for new peers, not new links: a peer that finished it keeps
its standing when its link drops and comes back (until it leaves for good).

The cap applies only beside a peer that has already answered its
:data:`SLOW_START_ANSWERS` requests: a peer that is alone, or among peers
that are all starting, is not held back (a requester that starts finds every
responder new).

:class:`SlowStart` only decides; :class:`~coterie.protocol.routing.Router`
counts each route's answers and asks it which routes may take one more.
"""

from __future__ import annotations

__all__ = ["SLOW_START_ANSWERS", "SlowStart"]

#: Answers on a new link after which a peer takes its full share.
SLOW_START_ANSWERS = 8


class SlowStart:
    """How many requests a newly linked peer may hold in flight.

    Args:
        answers: Answers after which the peer is no longer held back
            (0 turns slow start off).
        initial: Requests in flight it may hold before its first answer.
    """

    __slots__ = ("_done", "answers", "initial")

    def __init__(self, answers: int = SLOW_START_ANSWERS, initial: int = 1) -> None:
        if answers < 0:
            raise ValueError(f"slow start answers must not be negative, got {answers!r}")
        if initial < 1:
            raise ValueError(f"a starting peer must take at least one request, got {initial!r}")
        self.answers = answers
        self.initial = initial
        self._done: set[str] = set()

    def begin(self, peer: str) -> int:
        """``peer``'s link came up: the answers it starts from (``answers`` if it finished)."""
        return self.answers if peer in self._done else 0

    def count(self, peer: str, answered: int) -> int:
        """``peer`` answered one more request on its link: its new count."""
        answered += 1
        if answered >= self.answers:
            self._done.add(peer)
        return answered

    def forget(self, peer: str) -> None:
        """``peer`` left for good: a return is a new peer."""
        self._done.discard(peer)

    def starting(self, answered: int) -> bool:
        """Whether a peer that answered ``answered`` requests on its link is still held back."""
        return answered < self.answers

    def allowance(self, answered: int) -> int | None:
        """Requests in flight it may hold; ``None`` for no cap."""
        if answered >= self.answers:
            return None
        return self.initial + answered

    def admits(self, answered: int, inflight: int) -> bool:
        """Whether it may take one more request now."""
        return answered >= self.answers or inflight < self.initial + answered
