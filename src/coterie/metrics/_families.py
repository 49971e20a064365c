"""The Prometheus side: metric families built at scrape time from the counts read.

Design: nothing on the hot path touches prometheus_client. A custom
collector registered on the registry reads every component
(:mod:`coterie.metrics._read`) when scraped and builds the families from
the added-up :class:`~coterie.metrics._counts.Counters` and the live
components' :class:`~coterie.metrics._counts.Gauges`. The names, labels and
help texts of every family live here (listed in docs/metrics.md).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Protocol

from coterie.metrics._counts import Counters, Gauges

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

__all__ = ["Collector", "Source"]


class Source(Protocol):
    """What the collector reads: a :class:`coterie.metrics.Metrics`."""

    @property
    def buckets(self) -> tuple[float, ...]:
        """Upper bounds of the duration histogram, in seconds."""

    def read(self) -> tuple[Counters, list[Gauges]]:
        """Counters of every component, live and closed, and the live ones' gauges."""


class Collector:
    """Turns a :class:`Source` into metric families at scrape time."""

    def __init__(self, source: Source) -> None:
        self.source = source

    def describe(self) -> Iterator[Metric]:
        """The families, empty: their names, for the registry's clash check."""
        return families(Counters(), [], self.source.buckets)

    def collect(self) -> Iterator[Metric]:
        """Every family, with the current values."""
        counters, gauges = self.source.read()
        return families(counters, gauges, self.source.buckets)


def families(
    counters: Counters, gauges: list[Gauges], buckets: tuple[float, ...]
) -> Iterator[Metric]:
    """Every coterie metric family, from the counts and gauges of one scrape."""
    from prometheus_client.metrics_core import (
        CounterMetricFamily,
        GaugeMetricFamily,
        HistogramMetricFamily,
    )

    bounds = [repr(b) for b in buckets] + ["+Inf"]

    requests = CounterMetricFamily(
        "coterie_requests",
        "Requests sent by requesters, by type and outcome, counted when settled.",
        labels=["type", "outcome"],
    )
    durations = HistogramMetricFamily(
        "coterie_request_duration_seconds",
        "Seconds from send to the answer (waiting included), for answered requests.",
        labels=["type"],
        unit="seconds",
    )
    for label, sent in sorted(counters.sent.items()):
        if sent.ok:
            requests.add_metric([label, "ok"], sent.ok)
        for outcome, value in sorted(sent.outcomes.items()):
            requests.add_metric([label, outcome], value)
        if any(sent.buckets):
            running, cumulative = 0, []
            for le, value in zip(bounds, sent.buckets, strict=True):
                running += value
                cumulative.append((le, running))
            durations.add_metric([label], cumulative, sent.sum)
    yield requests
    yield durations

    handled = CounterMetricFamily(
        "coterie_requests_handled",
        "Requests answered by responders, by type and outcome.",
        labels=["type", "outcome"],
    )
    for label, outcomes in sorted(counters.handled.items()):
        for outcome, value in sorted(outcomes.items()):
            handled.add_metric([label, outcome], value)
    yield handled

    def gauge(name: str, doc: str, value: Callable[[Gauges], int]) -> Metric:
        return GaugeMetricFamily(name, doc, value=sum(value(g) for g in gauges))

    yield gauge(
        "coterie_requests_in_flight",
        "Requests sent to a responder and not answered yet.",
        lambda g: g.in_flight,
    )
    yield gauge(
        "coterie_requests_waiting",
        "Requests queued for a responder.",
        lambda g: g.waiting,
    )
    yield gauge(
        "coterie_requests_in_progress",
        "Requests whose coroutine handler is running in a responder.",
        lambda g: g.in_progress,
    )

    def total(name: str, doc: str, key: str) -> Metric:
        return CounterMetricFamily(name, doc, value=counters.totals.get(key, 0))

    yield total(
        "coterie_requests_resent",
        "Requests sent again to another responder after their link was lost.",
        "resent",
    )
    yield total(
        "coterie_late_replies",
        "Replies that matched no live request (dropped).",
        "late",
    )

    links = GaugeMetricFamily(
        "coterie_links", "Open links (to peers and monitors), by role.", labels=["role"]
    )
    by_role: dict[str, int] = {}
    for g in gauges:
        by_role[g.role] = by_role.get(g.role, 0) + g.links
    for role, value in sorted(by_role.items()):
        links.add_metric([role], value)
    yield links
    for i, (name, doc) in enumerate(
        (
            ("coterie_links_opened", "Links opened, by role."),
            ("coterie_links_closed", "Links closed or lost, by role."),
            (
                "coterie_link_reconnects",
                "Outgoing links opened again to a node they had been open to, by role.",
            ),
        )
    ):
        family = CounterMetricFamily(name, doc, labels=["role"])
        for role, counts in sorted(counters.links.items()):
            family.add_metric([role], counts[i])
        yield family

    nodes: dict[str, str] = {}
    for g in gauges:
        nodes.update(g.nodes)
    node_roles: dict[str, int] = {}
    for role in nodes.values():
        node_roles[role] = node_roles.get(role, 0) + 1
    discovered = GaugeMetricFamily(
        "coterie_discovery_nodes",
        "Distinct nodes this process's components know from discovery, by their role.",
        labels=["role"],
    )
    for role, value in sorted(node_roles.items()):
        discovered.add_metric([role], value)
    yield discovered

    for name, doc, events in (
        ("coterie_events_published", "Events published, by event name.", counters.published),
        (
            "coterie_events_received",
            "Events received by subscribers, by event.",
            counters.received,
        ),
    ):
        family = CounterMetricFamily(name, doc, labels=["event"])
        for label, value in sorted(events.items()):
            family.add_metric([label], value)
        yield family
    yield total(
        "coterie_events_dropped",
        "Event copies publishers dropped for subscribers too slow to take them.",
        "dropped",
    )
