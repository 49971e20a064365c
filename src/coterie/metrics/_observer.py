"""One component's metrics observer: the events bump tallies, ``stats()`` gives the gauges.

Design: :class:`ComponentMetrics` is a :class:`coterie.observe.Observer`.
Its events bump the plain counters of :mod:`coterie.metrics._counts`; the
tally of a request type or event name is cached by its raw value, so an
event does no label lookup beyond one dict subscript. What the component
holds now (in flight, waiting, links, resent, dropped, discovered nodes) is
not counted here: a scrape reads it from the component's ``stats()``.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Protocol

from coterie.metrics._counts import Count, Counters, Gauges, Handled, Sent, Timed
from coterie.observe import (
    Observed,
    Observer,
    PublisherStats,
    RequesterStats,
    ResponderStats,
    Stats,
    outcome_of,
)

__all__ = ["OTHER", "ComponentMetrics", "Owner"]

#: The label value that takes every type or event name beyond the bounds.
OTHER = "other"
#: Durations kept unsorted before they are counted into buckets in one go.
_FOLD_AT = 512
_clock = time.perf_counter


class Owner(Protocol):
    """What a :class:`ComponentMetrics` needs of its :class:`coterie.metrics.Metrics`."""

    @property
    def buckets(self) -> tuple[float, ...]:
        """Upper bounds of the duration histogram, in seconds."""

    def label(self, kind: str, raw: Any) -> str:
        """The label value for a raw request type (``kind="type"``) or event name."""

    def attach(self, view: ComponentMetrics) -> None:
        """Read ``view`` at scrapes from now on."""

    def detach(self, view: ComponentMetrics, counters: Counters) -> None:
        """Stop reading ``view``; keep its last ``counters`` in the totals."""


def totals(stats: Stats) -> dict[str, int]:
    """Counters a component keeps itself (free on the hot path), from its snapshot."""
    if isinstance(stats, RequesterStats):
        return {"resent": stats.resent, "late": stats.late_replies}
    if isinstance(stats, PublisherStats):
        return {"dropped": stats.dropped}
    return {}


def gauges(stats: Stats) -> Gauges:
    """A scrape's gauges, from a component's snapshot."""
    out = Gauges(stats.role, links=stats.links + stats.monitors, nodes=dict(stats.nodes))
    if isinstance(stats, RequesterStats):
        out.in_flight = stats.in_flight
        out.waiting = stats.waiting
    elif isinstance(stats, ResponderStats):
        out.in_progress = stats.in_progress
    return out


class ComponentMetrics(Observer):
    """One component's observer for a :class:`coterie.metrics.Metrics`.

    Created by :meth:`coterie.metrics.Metrics.observe`. Its tallies are
    touched by the component's event loop only, and scrapes read them there.
    """

    def __init__(self, owner: Owner, component: Observed) -> None:
        self.owner = owner
        self.component = component
        #: The component's role, known once it started.
        self.role = ""
        self.bounds = list(owner.buckets)
        self.loop: asyncio.AbstractEventLoop | None = None
        #: The last successful reading, for a scrape its loop does not answer.
        self.last: tuple[Counters, Gauges] | None = None
        self._reset()
        #: Request id -> when it was sent, for requests between begin and end.
        self._live: dict[str, float] = {}
        #: Totals read from the component already handed to the retired ones.
        self._retired: dict[str, int] = {}

    def _reset(self) -> None:
        # Raw value (a request's type) -> tally; only values within the label
        # bound are cached, so these stay within it too.
        self._sent: dict[Any, Timed] = {}
        self._sent_labels: dict[str, Timed] = {}
        self._handled: dict[Any, Handled] = {}
        self._handled_labels: dict[str, Handled] = {}
        self._published: dict[Any, Count] = {}
        self._published_labels: dict[str, Count] = {}
        self._received: dict[Any, Count] = {}
        self._received_labels: dict[str, Count] = {}
        self._links = [0, 0, 0]  # opened, closed, reconnects

    # -- lifecycle ---------------------------------------------------------------

    def started(self) -> None:
        """The component started: scrapes read it on this loop."""
        self.loop = asyncio.get_running_loop()
        self.role = self.component.stats().role
        self.owner.attach(self)

    def closed(self) -> None:
        """The component closed: hand its counts to the retired ones, stop reading it."""
        counters = self.counters()
        self.owner.detach(self, counters)
        self._retired = totals(self.component.stats())
        self._reset()

    # -- reading (on the component's loop) ----------------------------------------

    def counters(self) -> Counters:
        """Counter values since the last close."""
        out = Counters()
        for label, timed in self._sent_labels.items():
            timed.fold(self.bounds)
            outcomes = dict(timed.outcomes)
            ok = timed.count - outcomes.get("error", 0)
            out.sent[label] = Sent(ok, outcomes, list(timed.buckets), timed.sum)
        for label, handled in self._handled_labels.items():
            outcomes = dict(handled.outcomes)
            if handled.ok:
                outcomes["ok"] = handled.ok
            out.handled[label] = outcomes
        out.published = {label: c.count for label, c in self._published_labels.items()}
        out.received = {label: c.count for label, c in self._received_labels.items()}
        if any(self._links):
            out.links[self.role] = list(self._links)
        out.totals = {
            name: value - self._retired.get(name, 0)
            for name, value in totals(self.component.stats()).items()
        }
        return out

    def gauges(self) -> Gauges:
        """The component's gauges now."""
        return gauges(self.component.stats())

    # -- tallies, on first use of a raw value ------------------------------------

    def _new_sent(self, raw: Any) -> Timed:
        label = self.owner.label("type", raw)
        tally = self._sent_labels.get(label)
        if tally is None:
            tally = self._sent_labels[label] = Timed(len(self.bounds))
        if label != OTHER:
            self._sent[raw] = tally
        return tally

    def _new_handled(self, raw: Any) -> Handled:
        label = self.owner.label("type", raw)
        tally = self._handled_labels.get(label)
        if tally is None:
            tally = self._handled_labels[label] = Handled()
        if label != OTHER:
            self._handled[raw] = tally
        return tally

    def _new_count(self, raw: Any, cache: dict[Any, Count], labels: dict[str, Count]) -> Count:
        label = self.owner.label("event", raw)
        tally = labels.get(label)
        if tally is None:
            tally = labels[label] = Count()
        if label != OTHER:
            cache[raw] = tally
        return tally

    # -- requester ---------------------------------------------------------------

    def request_begin(self, request: dict[str, Any], request_id: str) -> dict[str, Any]:
        """A request is sent: start its clock."""
        self._live[request_id] = _clock()
        return request

    def request_end(self, request_id: str, request_type: Any, error: BaseException | None) -> None:
        """A request is settled: count its outcome, and its duration if it was answered."""
        # Subscripts in try blocks rather than get/pop: the cheapest lookups when
        # they succeed, which is every time but the first.
        live = self._live
        try:
            started = live[request_id]
        except KeyError:  # ended already (cancelled as it was answered)
            return
        del live[request_id]
        try:
            tally = self._sent[request_type]
        except (KeyError, TypeError):
            tally = self._new_sent(request_type)
        if error is not None:
            outcome = outcome_of(error)
            tally.outcomes[outcome] = tally.outcomes.get(outcome, 0) + 1
            if outcome != "error":  # not answered: no duration
                return
        durations = tally.durations
        durations.append(_clock() - started)
        if len(durations) >= _FOLD_AT:
            tally.fold(self.bounds)

    # -- responder ---------------------------------------------------------------

    def handling(self, request_type: Any, carrier: Any) -> Handled:
        """A handler is about to run: its type's tally hears how it ends."""
        try:
            return self._handled[request_type]  # a str: it has a handler
        except KeyError:
            return self._new_handled(request_type)

    def refused(self, request_type: Any, outcome: str) -> None:
        """The responder answered an error without running a handler."""
        try:
            tally = self._handled.get(request_type)
        except TypeError:
            tally = None
        if tally is None:
            tally = self._new_handled(request_type)
        tally.outcomes[outcome] = tally.outcomes.get(outcome, 0) + 1

    # -- pub/sub -----------------------------------------------------------------

    def published(self, event: str) -> None:
        """An event was published."""
        try:
            tally = self._published[event]
        except KeyError:
            tally = self._new_count(event, self._published, self._published_labels)
        tally.count += 1

    def received(self, event: str) -> None:
        """An event passed the subscriber's filter."""
        try:
            tally = self._received[event]
        except KeyError:
            tally = self._new_count(event, self._received, self._received_labels)
        tally.count += 1

    # -- links -------------------------------------------------------------------

    def link_opened(self, address: str, again: bool) -> None:
        """A link is up (to a peer or a monitor, accepted or opened)."""
        self._links[0] += 1
        if again:
            self._links[2] += 1

    def link_closed(self, address: str, error: BaseException | None) -> None:
        """A link is gone."""
        self._links[1] += 1
