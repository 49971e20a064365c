"""Prometheus metrics for coterie components (``pip install 'coterie[metrics]'``).

Turn them on per component with ``metrics=True`` (the process-wide
:func:`default`, on prometheus_client's default registry) or
``metrics=Metrics(registry=...)``, and expose them with :func:`serve`
(``coterie.metrics.serve(9464)``) or :meth:`Metrics.exposition` from your own
HTTP server. Off by default.

Design: the hot path never touches prometheus_client. A component with
metrics gets a :class:`ComponentMetrics` observer whose hooks (called from
``Requester.send`` and its outcome handling, the responder around each
handler, ``Publisher.publish``, subscriber delivery, link up and down) bump
plain Python counters kept per component and per label value; the tally of a
request type or event name is cached, so a hook does no label lookup beyond
one dict subscript. A requester's durations are appended to a list and
counted into histogram buckets 512 at a time (one sort, one bisect per
bound) rather than one bisect per request. A custom collector registered on
the registry builds the metric families at scrape time from every
component's tallies and from gauges read off the live components (requests
in flight and waiting, links, discovery nodes). prometheus_client's own
``Counter.labels(...).inc()`` and ``Histogram.observe`` take a lock and cost
about 2 and 3 µs a call on the bench machine, a tenth of a request's CPU
time; the tallies cost about 4,500 instructions (0.4 µs) a request on the
requester side and 1,600 (0.15 µs) on the responder side, under 5% of each
side's user-space instructions per request over TCP (callgrind) and about 1%
of their CPU time. With metrics off a component holds ``None`` and the
request path costs one ``None`` check.

Threads: a component's tallies are touched only by its event loop, and a
scrape reads them there too: from another thread (:func:`serve` answers in
prometheus_client's server thread) the collector hands the read to each
component's loop (``call_soon_threadsafe``) and waits up to
:data:`SNAPSHOT_TIMEOUT` seconds; the components of a loop blocked longer are
reported as last read (and it is logged). A closed component's counts are
kept, added to the totals, so counters never go down.

Cardinality: request types and event names are chosen by users (and by
remote callers, for a responder), so each family keeps at most ``max_labels``
distinct values (100 by default); further ones, names that are not strings
and names longer than :data:`MAX_LABEL_LENGTH` characters count under
``other``.

Metrics (``role`` is the reporting component's: requester, responder,
publisher, subscriber, monitor):

- ``coterie_requests_total{type,outcome}``: requests sent by requesters,
  counted once each when settled; outcome ``ok``, ``error`` (the responder
  answered with an error), ``timeout``, ``link_lost``, ``queue_full``,
  ``closed``, ``too_large``, ``cancelled``, ``failed``;
- ``coterie_request_duration_seconds{type}``: from ``send`` to the answer
  (waiting included), for requests that got one (``ok`` and ``error``);
- ``coterie_requests_handled_total{type,outcome}``: requests answered by
  responders; outcome ``ok``, ``error`` (the handler raised), ``no_handler``,
  ``bad_request``, ``cancelled``. Responders count but do not time: the
  requester's histogram covers the round trip, and a clock read on each side
  of every handler would double the responder's share of the cost;
- ``coterie_requests_in_flight``, ``coterie_requests_waiting``: requesters'
  requests sent and unanswered, and queued for a responder (gauges);
- ``coterie_requests_in_progress``: responders' handlers running (gauge);
- ``coterie_requests_resent_total``: failovers: requests sent again after
  their link was lost;
- ``coterie_late_replies_total``: replies that matched no live request;
- ``coterie_links{role}`` (gauge), ``coterie_links_opened_total{role}``,
  ``coterie_links_closed_total{role}``, ``coterie_link_reconnects_total{role}``
  (an outgoing link opened again to a node it had been open to);
- ``coterie_discovery_nodes{role}``: distinct nodes this process's components
  know from discovery, by the node's role (gauge);
- ``coterie_events_published_total{event}``,
  ``coterie_events_received_total{event}``, ``coterie_events_dropped_total``
  (event copies a publisher dropped for a subscriber too slow to take them).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import logging
import threading
import time
from bisect import bisect_right
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from coterie._observe import outcome_of

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

    from prometheus_client.metrics_core import Metric
    from prometheus_client.registry import CollectorRegistry

    from coterie.components.base import Component
    from coterie.transport.link import Link
    from coterie.transport.peers import Peer

__all__ = [
    "DEFAULT_BUCKETS",
    "MAX_LABELS",
    "MAX_LABEL_LENGTH",
    "OTHER",
    "SNAPSHOT_TIMEOUT",
    "ComponentMetrics",
    "Metrics",
    "MetricsServer",
    "default",
    "resolve",
    "serve",
]

log = logging.getLogger("coterie.metrics")

#: Histogram buckets in seconds, from 100 µs (a request on one host) to 10 s.
DEFAULT_BUCKETS = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
#: Distinct request types (or event names) before the rest fold into ``other``.
MAX_LABELS = 100
#: Longer request types and event names count as ``other``.
MAX_LABEL_LENGTH = 100
#: The label value that takes every type or event name beyond the bounds.
OTHER = "other"
#: Seconds a scrape from another thread waits for a component's event loop.
SNAPSHOT_TIMEOUT = 2.0

#: Durations kept unsorted before they are counted into buckets in one go.
_FOLD_AT = 512
_INSTALL_HINT = "coterie's metrics need prometheus_client: pip install 'coterie[metrics]'"
_clock = time.perf_counter


def _prometheus() -> Any:
    try:
        import prometheus_client
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(_INSTALL_HINT) from exc
    return prometheus_client


def _role(component: Component) -> str:
    from coterie.components.monitor import role_of  # here: monitor imports base, base us

    return role_of(component.advertisement)


# -- tallies: what the hooks bump (one set per component, touched by its loop only) --------


class _Timed:
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


class _Handled:
    """A responder's counts by outcome for one label value; also its hooks' :class:`Handling`.

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
            outcome = "error" if isinstance(error, Exception) else outcome_of(error)
            self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1


class _Count:
    __slots__ = ("count",)

    def __init__(self) -> None:
        self.count = 0


# -- what a scrape adds up -------------------------------------------------------------


@dataclass
class _Sent:
    ok: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    buckets: list[int] = field(default_factory=list)
    sum: float = 0.0


@dataclass
class _Counters:
    """Counter values, added up over components (live ones and closed ones)."""

    sent: dict[str, _Sent] = field(default_factory=dict)
    handled: dict[str, dict[str, int]] = field(default_factory=dict)
    published: dict[str, int] = field(default_factory=dict)
    received: dict[str, int] = field(default_factory=dict)
    #: role -> [opened, closed, reconnects]
    links: dict[str, list[int]] = field(default_factory=dict)
    #: resent, late, dropped: counters the components keep themselves.
    totals: dict[str, int] = field(default_factory=dict)

    def add(self, other: _Counters) -> None:
        for label, sent in other.sent.items():
            mine = self.sent.setdefault(label, _Sent(buckets=[0] * len(sent.buckets)))
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
class _Gauges:
    """What a scrape reads from one live component."""

    role: str
    in_flight: int = 0
    waiting: int = 0
    in_progress: int = 0
    links: int = 0
    nodes: dict[str, str] = field(default_factory=dict)


# -- per component ----------------------------------------------------------------------


class ComponentMetrics:
    """One component's hooks into a :class:`Metrics` (components call these).

    Created by :meth:`Metrics.observe`; :meth:`attach` and :meth:`detach`
    follow the component's start and close. Its tallies are touched by the
    component's event loop only; scrapes read them there.
    """

    def __init__(self, metrics: Metrics, component: Component) -> None:
        self.metrics = metrics
        self.component = component
        self.role = _role(component)
        self.bounds = list(metrics.buckets)
        self.loop: asyncio.AbstractEventLoop | None = None
        #: The last successful reading, for a scrape its loop does not answer.
        self.last: tuple[_Counters, _Gauges] | None = None
        self._reset()
        #: Request id -> when it was sent, for requests between begin and end.
        self._live: dict[str, float] = {}
        #: Totals read from the component already handed to the retired ones.
        self._retired: dict[str, int] = {}

    def _reset(self) -> None:
        # Raw value (a request's type) -> tally; only values within the label
        # bound are cached, so these stay within it too.
        self._sent: dict[Any, _Timed] = {}
        self._sent_labels: dict[str, _Timed] = {}
        self._handled: dict[Any, _Handled] = {}
        self._handled_labels: dict[str, _Handled] = {}
        self._published: dict[Any, _Count] = {}
        self._published_labels: dict[str, _Count] = {}
        self._received: dict[Any, _Count] = {}
        self._received_labels: dict[str, _Count] = {}
        self._links = [0, 0, 0]  # opened, closed, reconnects

    # -- lifecycle ---------------------------------------------------------------

    def attach(self) -> None:
        """The component started: scrapes read it on this loop."""
        self.loop = asyncio.get_running_loop()
        self.metrics._attach(self)

    def detach(self) -> None:
        """The component closed: hand its counts to the retired ones, stop reading it."""
        counters = self.counters()
        self.metrics._detach(self, counters)
        self._retired = dict(_totals(self.component))
        self._reset()

    def counters(self) -> _Counters:
        """Counter values since the last detach (on the component's loop)."""
        out = _Counters()
        for label, timed in self._sent_labels.items():
            timed.fold(self.bounds)
            outcomes = dict(timed.outcomes)
            ok = timed.count - outcomes.get("error", 0)
            out.sent[label] = _Sent(ok, outcomes, list(timed.buckets), timed.sum)
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
            for name, value in _totals(self.component).items()
        }
        return out

    def gauges(self) -> _Gauges:
        """The component's gauges now (on its loop)."""
        component = self.component
        gauges = _Gauges(self.role)
        reader = _GAUGES.get(self.role)
        if reader is not None:
            reader(component, gauges)
        if component.discovery is not None:
            from coterie.components.monitor import role_of

            for node_id, node in component.discovery.nodes.items():
                gauges.nodes[node_id] = role_of(node.advertisement)
        return gauges

    # -- tallies, on first use of a raw value ------------------------------------

    def _new_sent(self, raw: Any) -> _Timed:
        label = self.metrics._label("type", raw)
        tally = self._sent_labels.get(label)
        if tally is None:
            tally = self._sent_labels[label] = _Timed(len(self.bounds))
        if label != OTHER:
            self._sent[raw] = tally
        return tally

    def _new_handled(self, raw: Any) -> _Handled:
        label = self.metrics._label("type", raw)
        tally = self._handled_labels.get(label)
        if tally is None:
            tally = self._handled_labels[label] = _Handled()
        if label != OTHER:
            self._handled[raw] = tally
        return tally

    def _new_count(self, raw: Any, cache: dict[Any, _Count], labels: dict[str, _Count]) -> _Count:
        label = self.metrics._label("event", raw)
        tally = labels.get(label)
        if tally is None:
            tally = labels[label] = _Count()
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

    def handling(self, request_type: Any, carrier: Any) -> _Handled:
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

    def link_opened(self, link: Link | None = None) -> None:
        """A link to this component is up."""
        self._links[0] += 1

    def link_closed(self, link: Link | None = None) -> None:
        """A link to this component is gone."""
        self._links[1] += 1

    def peer_linked(self, peer: Peer, times: int) -> None:
        """An outgoing link is up, for the ``times``-th time to this node."""
        self._links[0] += 1
        if times > 1:
            self._links[2] += 1

    def peer_unlinked(self, peer: Peer) -> None:
        """An outgoing link dropped."""
        self._links[1] += 1


def _totals(component: Any) -> dict[str, int]:
    """Counters a component keeps itself, read at scrape time (free on the hot path)."""
    totals: dict[str, int] = {}
    router = getattr(component, "router", None)
    if router is not None:
        totals["resent"] = router.retried
        totals["late"] = router.late_replies
    dropped = getattr(component, "dropped", None)
    if isinstance(dropped, int):
        totals["dropped"] = dropped
    return totals


def _requester_gauges(component: Any, gauges: _Gauges) -> None:
    router = component.router
    gauges.in_flight = router.inflight
    gauges.waiting = router.waiting
    gauges.links = component.connected


def _listener_gauges(component: Any, gauges: _Gauges) -> None:
    gauges.links = len(component.links)


def _responder_gauges(component: Any, gauges: _Gauges) -> None:
    gauges.links = len(component.links)
    gauges.in_progress = component.in_progress


def _subscriber_gauges(component: Any, gauges: _Gauges) -> None:
    gauges.links = component.connected


_GAUGES: dict[str, Callable[[Any, _Gauges], None]] = {
    "requester": _requester_gauges,
    "responder": _responder_gauges,
    "publisher": _listener_gauges,
    "monitor": _listener_gauges,
    "subscriber": _subscriber_gauges,
}


# -- the registry side --------------------------------------------------------------


class Metrics:
    """Metrics of any number of components, exposed on a prometheus_client registry.

    Args:
        registry: Where the collector registers; prometheus_client's default
            ``REGISTRY`` when ``None``. Two :class:`Metrics` cannot share a
            registry (their names clash): use :func:`default` for the
            process-wide one.
        max_labels: Distinct request types, and distinct event names, before
            the rest count as ``other``.
        buckets: Upper bounds of the duration histogram, in seconds.

    Raises:
        ImportError: prometheus_client is not installed.
        ValueError: ``registry`` already has coterie's metrics.
    """

    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        *,
        max_labels: int = MAX_LABELS,
        buckets: Sequence[float] = DEFAULT_BUCKETS,
    ) -> None:
        prometheus_client = _prometheus()
        if max_labels < 1:
            raise ValueError(f"max_labels must be at least 1, got {max_labels}")
        self.registry: CollectorRegistry = (
            prometheus_client.REGISTRY if registry is None else registry
        )
        self.max_labels = max_labels
        self.buckets = tuple(sorted(float(b) for b in buckets if b != float("inf")))
        self._labels: dict[str, set[str]] = {"type": set(), "event": set()}
        self._live: dict[ComponentMetrics, None] = {}
        self._retired = _Counters()
        self._lock = threading.Lock()
        self.registry.register(_Collector(self))

    def observe(self, component: Component) -> ComponentMetrics:
        """The hooks for ``component`` (components call this themselves)."""
        return ComponentMetrics(self, component)

    def exposition(self, accept: str | None = None) -> tuple[bytes, str]:
        """The registry in the text format an HTTP ``Accept`` header asks for.

        Returns:
            The body and its ``Content-Type``, for an HTTP handler of your own
            (``GET /metrics``).
        """
        from prometheus_client.exposition import choose_encoder

        encoder, content_type = choose_encoder(accept or "")
        return encoder(self.registry), content_type

    # -- bookkeeping ---------------------------------------------------------------

    def _label(self, kind: str, raw: Any) -> str:
        """The label value for a raw type or event name, within the bound."""
        if not isinstance(raw, str) or len(raw) > MAX_LABEL_LENGTH or raw == OTHER:
            return OTHER
        with self._lock:
            seen = self._labels[kind]
            if raw in seen:
                return raw
            if len(seen) >= self.max_labels:
                return OTHER
            seen.add(raw)
            return raw

    def _attach(self, view: ComponentMetrics) -> None:
        with self._lock:
            self._live[view] = None

    def _detach(self, view: ComponentMetrics, counters: _Counters) -> None:
        with self._lock:
            self._live.pop(view, None)
            self._retired.add(counters)

    def _read(self) -> tuple[_Counters, list[_Gauges]]:
        """Counters of every component, live and closed, and the live ones' gauges."""
        with self._lock:
            views = list(self._live)
            total = _Counters()
            total.add(self._retired)
        gauges: list[_Gauges] = []
        for counters, view_gauges in _read_views(views):
            total.add(counters)
            gauges.append(view_gauges)
        return total, gauges


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


Reading = list[tuple[_Counters, _Gauges]]


def _read_here(views: list[ComponentMetrics]) -> Reading:
    out: Reading = []
    for view in views:
        view.last = (view.counters(), view.gauges())
        out.append(view.last)
    return out


def _read_views(views: list[ComponentMetrics]) -> Reading:
    """Each component's counters and gauges, read on its own event loop."""
    here = _running_loop()
    by_loop: dict[asyncio.AbstractEventLoop | None, list[ComponentMetrics]] = {}
    for view in views:
        by_loop.setdefault(view.loop, []).append(view)
    out: Reading = []
    for loop, group in by_loop.items():
        if loop is None or loop is here or loop.is_closed() or not loop.is_running():
            out.extend(_read_here(group))
            continue
        result: concurrent.futures.Future[Reading] = concurrent.futures.Future()

        def job(group: list[ComponentMetrics] = group, result: Any = result) -> None:
            try:
                result.set_result(_read_here(group))
            except BaseException as exc:  # handed to the scraping thread
                result.set_exception(exc)

        try:
            loop.call_soon_threadsafe(job)
            out.extend(result.result(timeout=SNAPSHOT_TIMEOUT))
        except (RuntimeError, concurrent.futures.TimeoutError):
            # Their last reading, so that no counter seems to go down.
            out.extend(view.last for view in group if view.last is not None)
            log.warning(
                "metrics: %d component(s) whose event loop did not answer the scrape "
                "within %g s are reported as last read",
                len(group),
                SNAPSHOT_TIMEOUT,
            )
    return out


class _Collector:
    """Turns a :class:`Metrics` into metric families at scrape time."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def describe(self) -> Iterator[Metric]:
        """The families, empty: their names, for the registry's clash check."""
        return self._families(_Counters(), [])

    def collect(self) -> Iterator[Metric]:
        """Every family, with the current values."""
        counters, gauges = self.metrics._read()
        return self._families(counters, gauges)

    def _families(self, counters: _Counters, gauges: list[_Gauges]) -> Iterator[Metric]:
        from prometheus_client.metrics_core import (
            CounterMetricFamily,
            GaugeMetricFamily,
            HistogramMetricFamily,
        )

        bounds = [repr(b) for b in self.metrics.buckets] + ["+Inf"]

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

        def gauge(name: str, doc: str, value: Callable[[_Gauges], int]) -> Metric:
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

        links = GaugeMetricFamily("coterie_links", "Open links, by role.", labels=["role"])
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


# -- the process-wide object and the HTTP endpoint ------------------------------------

_default: Metrics | None = None
_default_lock = threading.Lock()


def default() -> Metrics:
    """The process-wide :class:`Metrics`, on prometheus_client's default registry.

    ``metrics=True`` on a component means this one.

    Raises:
        ImportError: prometheus_client is not installed.
    """
    global _default
    with _default_lock:
        if _default is None:
            _default = Metrics()
        return _default


def resolve(metrics: Metrics | bool | None) -> Metrics | None:
    """What a component's ``metrics=`` argument means: ``None`` when off.

    Raises:
        TypeError: For anything but a :class:`Metrics`, a bool or ``None``.
    """
    if metrics is None or metrics is False:
        return None
    if metrics is True:
        return default()
    if isinstance(metrics, Metrics):
        return metrics
    raise TypeError(f"metrics must be a coterie.metrics.Metrics, a bool or None, got {metrics!r}")


class MetricsServer:
    """The HTTP endpoint :func:`serve` started; ``close()`` stops it.

    Attributes:
        host: The address it listens on.
        port: The port it listens on (the one picked, if 0 was asked).
    """

    def __init__(self, server: WSGIServer, thread: threading.Thread, host: str) -> None:
        self._server = server
        self._thread = thread
        self.host = host
        self.port: int = server.server_port

    @property
    def url(self) -> str:
        """Where to scrape: ``http://host:port/metrics``."""
        return f"http://{self.host}:{self.port}/metrics"

    def close(self) -> None:
        """Stop serving and release the port."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def serve(port: int, host: str = "127.0.0.1", *, metrics: Metrics | None = None) -> MetricsServer:
    """Serve ``metrics`` (:func:`default` if ``None``) over HTTP, in a daemon thread.

    prometheus_client's own server answers every path, ``/metrics`` included.
    Component gauges are read on their event loops (see the module doc), so
    keep the loop running while scraping.

    Args:
        port: TCP port; 0 picks a free one (see :attr:`MetricsServer.port`).
        host: Address to listen on; this host only by default.
        metrics: The metrics to serve; its registry is what is served.

    Raises:
        ImportError: prometheus_client is not installed.
        OSError: The address is taken.
    """
    prometheus_client = _prometheus()
    target = metrics if metrics is not None else default()
    server, thread = prometheus_client.start_http_server(port, addr=host, registry=target.registry)
    return MetricsServer(server, thread, host)
