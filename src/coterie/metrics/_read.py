"""Reading components for a scrape, each on its own event loop.

Design: a component's tallies and ``stats()`` are touched by its event loop
only. A scrape from another thread (:func:`coterie.metrics.serve` answers in
prometheus_client's server thread) hands the read to each loop with
``call_soon_threadsafe`` and waits up to a bound (``snapshot_timeout``);
the components of a loop blocked longer are reported as last read (and it is
logged), so that no counter seems to go down. A scrape on a component's own
loop, or of a component whose loop is not running, reads it in place.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
from typing import Any

from coterie.metrics._counts import Counters, Gauges
from coterie.metrics._observer import ComponentMetrics

__all__ = ["Reading", "read"]

log = logging.getLogger("coterie.metrics")

Reading = list[tuple[Counters, Gauges]]


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _read_here(views: list[ComponentMetrics]) -> Reading:
    out: Reading = []
    for view in views:
        view.last = (view.counters(), view.gauges())
        out.append(view.last)
    return out


def read(views: list[ComponentMetrics], timeout: float) -> Reading:
    """Each component's counters and gauges, read on its own event loop.

    A loop that does not answer within ``timeout`` seconds has its
    components reported as last read.
    """
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
            except BaseException as exc:  # noqa: BLE001 - handed to the scraping thread
                result.set_exception(exc)

        try:
            loop.call_soon_threadsafe(job)
            out.extend(result.result(timeout=timeout))
        except (RuntimeError, concurrent.futures.TimeoutError):
            # Their last reading, so that no counter seems to go down.
            out.extend(view.last for view in group if view.last is not None)
            log.warning(
                "metrics: %d component(s) whose event loop did not answer the scrape "
                "within %g s are reported as last read",
                len(group),
                timeout,
            )
    return out
