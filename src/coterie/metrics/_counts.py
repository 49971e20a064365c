"""The numbers metrics keep: one component's tallies, and what a scrape adds up.

Design: a component's observer (:mod:`coterie.metrics._observer`) bumps
plain Python counters, one tally per label value, touched by the
component's event loop only. A scrape turns them into :class:`Counters`
(added up over components, live and closed) and :class:`Gauges` (read off a
live component's ``stats()``). A requester's durations are appended to a
list and counted into histogram buckets in batches (:meth:`Timed.fold`).
"""

from __future__ import annotations

import contextvars
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass, field

from coterie.observe import outcome_of
from coterie.protocol.codes import INVALID

__all__ = ["Count", "Counters", "Gauges", "Handled", "Sent", "Timed"]


class Timed:
    """A requester's counts by outcome and its durations, for one label value."""

    __slots__ = ("buckets", "count", "durations", "outcomes", "sum")

    def __init__(self, size: int) -> None:
        #: Outcomes other than ok: error, timeout, link_lost, ...
        self.outcomes: dict[str, int] = {}
        #: Durations of answered requests (ok and error) not yet counted into
        #: buckets (see :meth:`fold`); ok = answered - error, so ok needs no
        #: counter of its own.
        self.durations: list[float] = []
        #: Non-cumulative counts per bucket, the last one for +Inf.
        self.buckets = [0] * (size + 1)
        self.sum = 0.0
        self.count = 0

    def fold(self, bounds: Sequence[float]) -> None:
        """Count the pending durations into the buckets: one sort, one bisect per bound."""
        pending = self.durations
        if not pending:
            return
        self.durations = []
        pending.sort()
        below = 0
        buckets = self.buckets
        for i, bound in enumerate(bounds):
            at = bisect_right(pending, bound)
            buckets[i] += at - below
            below = at
        buckets[-1] += len(pending) - below
        self.sum += sum(pending)
        self.count += len(pending)


class Handled:
    """A responder's counts by outcome for one label value; also its observer's ``Handling``.

    Shared by every request of its type in one component: :meth:`done` only
    counts, so requests handled concurrently need no object of their own.
    """

    __slots__ = ("context", "ok", "outcomes")

    def __init__(self) -> None:
        self.context: contextvars.Context | None = None
        self.ok = 0
        self.outcomes: dict[str, int] = {}

    def done(self, error: BaseException | None) -> None:
        """The reply is written; ``error`` is what the handler raised."""
        if error is None:
            self.ok += 1
        else:
            # A handler's failure is an error, whatever it raised; but a typed
            # handler's refusal of invalid input (code "invalid") is its own outcome.
            outcome = outcome_of(error)
            if isinstance(error, Exception) and outcome != INVALID:
                outcome = "error"
            self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1


class Count:
    """One counter (events published or received under one label value)."""

    __slots__ = ("count",)

    def __init__(self) -> None:
        self.count = 0


@dataclass
class Sent:
    """A requester's counts for one request type, as a scrape adds them up."""

    ok: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    buckets: list[int] = field(default_factory=list)
    sum: float = 0.0


@dataclass
class Counters:
    """Counter values, added up over components (live ones and closed ones)."""

    sent: dict[str, Sent] = field(default_factory=dict)
    handled: dict[str, dict[str, int]] = field(default_factory=dict)
    published: dict[str, int] = field(default_factory=dict)
    received: dict[str, int] = field(default_factory=dict)
    #: role -> [opened, closed, reconnects]
    links: dict[str, list[int]] = field(default_factory=dict)
    #: resent, late, dropped: counters the components keep themselves.
    totals: dict[str, int] = field(default_factory=dict)

    def add(self, other: Counters) -> None:
        """Add ``other``'s values to these."""
        for label, sent in other.sent.items():
            mine = self.sent.setdefault(label, Sent(buckets=[0] * len(sent.buckets)))
            mine.ok += sent.ok
            _add(mine.outcomes, sent.outcomes)
            mine.buckets = [a + b for a, b in zip(mine.buckets, sent.buckets, strict=True)]
            mine.sum += sent.sum
        for label, outcomes in other.handled.items():
            _add(self.handled.setdefault(label, {}), outcomes)
        _add(self.published, other.published)
        _add(self.received, other.received)
        for role, counts in other.links.items():
            mine_links = self.links.setdefault(role, [0, 0, 0])
            for i, n in enumerate(counts):
                mine_links[i] += n
        _add(self.totals, other.totals)


def _add(into: dict[str, int], more: dict[str, int]) -> None:
    for key, n in more.items():
        into[key] = into.get(key, 0) + n


@dataclass
class Gauges:
    """What a scrape reads from one live component."""

    role: str
    in_flight: int = 0
    waiting: int = 0
    in_progress: int = 0
    links: int = 0
    nodes: dict[str, str] = field(default_factory=dict)
