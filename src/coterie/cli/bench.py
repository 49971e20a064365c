"""``coterie bench``: load one request type from the shell and report req/s, p50, p99.

Design: one :class:`coterie.Requester` with the command's pairing and
discovery options sends ``-n`` copies of ``{"type": TYPE, **JSON}``, at most
``-c`` in flight: ``-c`` workers each send, await, and send the next, so the
count in flight stays at ``-c`` until the tail. The first request is a
warm-up that waits for discovery and is not counted. Each request's latency
is measured from its send to its answer (``time.perf_counter``); req/s is the
count over the wall time of the whole run.

Output: a progress bar on stderr (rich, the ``cli`` extra; without rich,
none), then one line on stdout::

    10000 requests, 0 errors in 1.52 s: 6579 req/s, p50 14.8 ms, p99 22.1 ms

or, with ``--json``, one object with ``requests``, ``errors``, ``seconds``,
``rps``, ``p50_ms`` and ``p99_ms``. Percentiles are nearest-rank over every
answered request. An error reply or a timeout counts as an error; the first
error's message goes to stderr, and the exit code is 1 when any occurred.
The warm-up failing ends the run as ``coterie call`` would: exit 1 for the
responder's error, 124 for no answer in time, with its reason.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

from coterie.cli._common import Subparsers, add_component_arguments, component_options
from coterie.cli.call import (
    EXIT_REMOTE_ERROR,
    EXIT_TIMEOUT,
    add_request_arguments,
    build_request,
    call_timeout,
    quiet_waiting,
)
from coterie.components.requester import Requester
from coterie.errors import CoterieError, RemoteError, RequestTimeoutError

__all__ = ["Result", "percentile", "register", "run"]


def register(subparsers: Subparsers) -> None:
    """Add the ``bench`` subcommand."""
    parser = subparsers.add_parser(
        "bench",
        help="send many requests of one type and print req/s, p50 and p99",
        description=(
            'Send -n requests {"type": TYPE, ...JSON}, -c at a time, with a progress bar, '
            "and print requests per second and the 50th and 99th percentile latencies."
        ),
    )
    add_request_arguments(parser)
    parser.add_argument(
        "-c", "--concurrency", type=int, default=100, metavar="C", help="in flight (100)"
    )
    parser.add_argument(
        "-n", "--requests", type=int, default=10_000, metavar="N", help="how many (10000)"
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=None,
        metavar="SECONDS",
        help="bound on each request (default: COTE_REQUEST_TIMEOUT, else 10)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    add_component_arguments(parser, "requester", "coterie bench")
    parser.set_defaults(run=run, _parser=parser)


class Result:
    """What one run measured.

    Attributes:
        latencies: Seconds from send to answer, one per answered request.
        errors: Requests that failed (error reply or timeout).
        seconds: Wall time of the run.
        first_error: The first failure's message, if any.
    """

    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.errors = 0
        self.seconds = 0.0
        self.first_error: str | None = None

    def summary(self) -> dict[str, Any]:
        """The figures ``--json`` prints."""
        done = sorted(self.latencies)
        total = len(done) + self.errors
        return {
            "requests": total,
            "errors": self.errors,
            "seconds": round(self.seconds, 6),
            "rps": round(total / self.seconds, 1) if self.seconds > 0 else None,
            "p50_ms": _ms(percentile(done, 0.50)),
            "p99_ms": _ms(percentile(done, 0.99)),
        }


def percentile(ordered: list[float], q: float) -> float | None:
    """The nearest-rank ``q`` quantile (0 < q <= 1) of an ascending list; ``None`` if empty."""
    if not ordered:
        return None
    return ordered[max(math.ceil(q * len(ordered)) - 1, 0)]


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 3)


def run(args: argparse.Namespace) -> int:
    """Run the load; print the figures. Returns the exit code."""
    parser: argparse.ArgumentParser = args._parser
    if args.concurrency < 1:
        parser.error(f"-c must be 1 or more, got {args.concurrency}")
    if args.requests < 1:
        parser.error(f"-n must be 1 or more, got {args.requests}")
    request = build_request(parser, args.type, args.body)
    timeout = call_timeout(parser, args.timeout)
    quiet_waiting(args)
    return asyncio.run(_bench(args, request, timeout, component_options(args)))


async def _bench(
    args: argparse.Namespace, request: dict[str, Any], timeout: float, options: dict[str, Any]
) -> int:
    requests = [request["type"]]
    max_waiting = max(10_000, args.concurrency)
    async with Requester(
        timeout=timeout, requests=requests, max_waiting=max_waiting, **options
    ) as requester:
        try:
            await requester.send(dict(request))  # waits for discovery; not counted
        except RemoteError as exc:
            sys.stderr.write(f"coterie bench: the responder failed: {exc}\n")
            return EXIT_REMOTE_ERROR
        except RequestTimeoutError as exc:
            sys.stderr.write(f"coterie bench: {exc}\n")
            return EXIT_TIMEOUT
        with _progress(args.requests, quiet=args.quiet) as advance:
            result = await load(requester, request, args.requests, args.concurrency, advance)
    figures = result.summary()
    if result.first_error is not None:
        sys.stderr.write(
            f"coterie bench: {result.errors} request(s) failed; the first: {result.first_error}\n"
        )
    if args.json:
        sys.stdout.write(json.dumps(figures) + "\n")
    else:
        sys.stdout.write(
            f"{figures['requests']} requests, {figures['errors']} errors in "
            f"{figures['seconds']:.2f} s: {figures['rps'] or 0:.0f} req/s, "
            f"p50 {_text(figures['p50_ms'])}, p99 {_text(figures['p99_ms'])}\n"
        )
    return 1 if result.errors else 0


def _text(ms: float | None) -> str:
    return "-" if ms is None else f"{ms:.2f} ms"


async def load(
    requester: Requester,
    request: dict[str, Any],
    count: int,
    concurrency: int,
    advance: Callable[[int], None],
) -> Result:
    """Send ``count`` copies of ``request``, ``concurrency`` in flight; measure each.

    Args:
        requester: A started requester.
        request: The request (copied for each send).
        count: How many to send.
        concurrency: Most in flight at once.
        advance: Called with the number of requests finished since its last call.
    """
    result = Result()
    left = count
    clock = time.perf_counter
    step = max(count // 200, 1)
    finished = 0

    async def worker() -> None:
        nonlocal left, finished
        while left > 0:
            left -= 1
            began = clock()
            try:
                await requester.send(dict(request))
            except CoterieError as exc:
                result.errors += 1
                if result.first_error is None:
                    result.first_error = str(exc)
            else:
                result.latencies.append(clock() - began)
            finished += 1
            if finished >= step:
                advance(finished)
                finished = 0

    started = clock()
    await asyncio.gather(*(worker() for _ in range(min(concurrency, count))))
    result.seconds = clock() - started
    if finished:
        advance(finished)
    return result


@contextlib.contextmanager
def _progress(total: int, *, quiet: bool) -> Iterator[Callable[[int], None]]:
    """A rich progress bar on stderr; yields ``advance(n)``. Nothing without rich or with ``-q``."""
    try:
        if quiet:
            raise ImportError
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )
    except ImportError:
        yield lambda n: None
        return
    columns = (TextColumn("coterie bench"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=Console(stderr=True)) as bar:
        task = bar.add_task("requests", total=total)
        yield lambda n: bar.advance(task, n)
