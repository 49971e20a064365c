"""Prometheus metrics for coterie components (``pip install 'coterie[metrics]'``).

Turn them on per component with ``metrics=True`` (the process-wide
:func:`default`, on prometheus_client's default registry) or
``metrics=Metrics(registry=...)``, and expose them with :func:`serve`
(``coterie.metrics.serve(9464)``) or :meth:`Metrics.exposition` from your own
HTTP server. Off by default: a component then holds no observer and the
request path costs one ``None`` check.

Design: metrics are an observer (:mod:`coterie.observe`). Each component
gets a :class:`ComponentMetrics` whose events bump plain Python counters
(``_counts``, ``_observer``); what a component holds now is read from its
``stats()`` at scrape time. A custom collector on the registry builds the
metric families when scraped (``_families``), reading every component on
its own event loop (``_read``). prometheus_client is never touched on the
hot path. The metric names, what they count, their cost and how it was
measured are in docs/metrics.md.

Cardinality: request types and event names are chosen by users (and by
remote callers, for a responder), so each family keeps at most ``max_labels``
distinct values (100 by default); further ones, names that are not strings
and names longer than :data:`MAX_LABEL_LENGTH` characters count under
:data:`OTHER`. A closed component's counts are kept in the totals, so
counters never go down.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from coterie.metrics._counts import Counters, Gauges
from coterie.metrics._families import Collector
from coterie.metrics._observer import OTHER, ComponentMetrics
from coterie.metrics._read import read
from coterie.metrics._server import MetricsServer, prometheus, start
from coterie.observe import Observed

if TYPE_CHECKING:
    from prometheus_client.registry import CollectorRegistry

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
#: Seconds a scrape from another thread waits for a component's event loop.
SNAPSHOT_TIMEOUT = 2.0


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
        snapshot_timeout: Seconds a scrape from another thread waits for a
            component's event loop; the components of a loop that does not
            answer are reported as last read.

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
        snapshot_timeout: float = SNAPSHOT_TIMEOUT,
    ) -> None:
        prometheus_client = prometheus()
        if max_labels < 1:
            raise ValueError(f"max_labels must be at least 1, got {max_labels}")
        if not snapshot_timeout > 0:
            raise ValueError(f"snapshot_timeout must be positive, got {snapshot_timeout!r}")
        self.registry: CollectorRegistry = (
            prometheus_client.REGISTRY if registry is None else registry
        )
        self.max_labels = max_labels
        self.buckets = tuple(sorted(float(b) for b in buckets if b != float("inf")))
        self.snapshot_timeout = snapshot_timeout
        self._labels: dict[str, set[str]] = {"type": set(), "event": set()}
        self._live: dict[ComponentMetrics, None] = {}
        self._retired = Counters()
        self._lock = threading.Lock()
        self.registry.register(Collector(self))

    def observe(self, component: Observed) -> ComponentMetrics:
        """The observer of ``component`` (components call this themselves)."""
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

    # -- what its observers and its collector call ---------------------------------

    def label(self, kind: str, raw: Any) -> str:
        """The label value for a raw request type (``kind="type"``) or event name.

        ``raw`` itself while within the bounds (see the module doc), else
        :data:`OTHER`.
        """
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

    def attach(self, view: ComponentMetrics) -> None:
        """A component started: read ``view`` at scrapes from now on."""
        with self._lock:
            self._live[view] = None

    def detach(self, view: ComponentMetrics, counters: Counters) -> None:
        """A component closed: stop reading ``view``; keep its ``counters`` in the totals."""
        with self._lock:
            self._live.pop(view, None)
            self._retired.add(counters)

    def read(self) -> tuple[Counters, list[Gauges]]:
        """Counters of every component, live and closed, and the live ones' gauges."""
        with self._lock:
            views = list(self._live)
            total = Counters()
            total.add(self._retired)
        gauges: list[Gauges] = []
        for counters, view_gauges in read(views, self.snapshot_timeout):
            total.add(counters)
            gauges.append(view_gauges)
        return total, gauges


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
    target = metrics if metrics is not None else default()
    return start(target.registry, port, host)
