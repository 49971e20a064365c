"""``coterie run MODULE:ATTR``: serve components in production, with probes and drain.

Design: the target is imported from the current directory or ``PYTHONPATH``
and is one of

- a component (``Responder``, ``Requester``, ...);
- a list (or tuple) of components;
- an async factory (``async def``) returning a component or a list of them,
  called inside the event loop;
- an async generator function that yields a component or a list once: the
  code after its ``yield`` runs at the first signal, alongside the
  responders' drain and within the grace (stop an HTTP front end there).

A target that does not import, has no such attribute or is of another type
is one ``coterie run: error: ...`` line and exit code 2, before anything
starts. The serving itself is :class:`coterie.serving.Serving`: the first
SIGTERM or SIGINT turns ``/readyz`` to 503, says goodbye, drains within
``--grace`` and exits 0; the second exits at once.

``--workers N`` starts N child processes of ``coterie run`` on the same
target, each its own node, each in a session of its own (a terminal's Ctrl-C
reaches only the parent, which forwards one SIGTERM to each). The parent
serves the probes: ``/readyz`` is 200 while every worker says it is ready
(each writes its readiness on a pipe), ``/livez`` while the parent's loop
answers. A worker that exits on its own is reported, the others are drained,
and the parent exits 1 (no restart: the orchestrator that restarts pods or
units decides that). A worker whose parent dies (the other end of its
lifeline pipe closes) drains and exits as on SIGTERM.

uvloop runs the event loop when it is installed (``pip install
'coterie[speed]'``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import inspect
import logging
import os
import signal
import sys
from collections.abc import AsyncGenerator, Awaitable, Callable, Coroutine
from typing import Any

from coterie.cli._common import Subparsers
from coterie.components.base import Component
from coterie.serving import (
    DEFAULT_GRACE,
    HEARTBEAT,
    SIGNALS,
    Health,
    Serving,
    quit_at_once,
)

__all__ = ["TargetError", "load_target", "register", "resolve_components", "run"]

log = logging.getLogger("coterie.run")

_EXAMPLE = """\
examples:
  coterie run services:validator --health-port 8081
  coterie run examples.payment.validation_service:responder --grace 5 --workers 4

MODULE:ATTR names a component, a list of them, or an async factory
(async def returning them, or an async generator yielding them once).
"""

#: What a worker writes on its report pipe: ready, not ready.
_READY, _UNREADY = b"1", b"0"


class TargetError(Exception):
    """The target cannot be served: the message says what to change."""


def register(subparsers: Subparsers) -> None:
    """Add the ``run`` subcommand."""
    parser = subparsers.add_parser(
        "run",
        help="serve components with signal handling, drain and health probes",
        description=(
            "Import MODULE:ATTR and serve it until SIGTERM or Ctrl-C. The first signal "
            "turns /readyz to 503, says goodbye on the mesh, lets requests in flight "
            "finish within --grace seconds and exits 0; a second one exits at once."
        ),
        epilog=_EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("target", metavar="MODULE:ATTR", help="what to serve")
    parser.add_argument(
        "--grace",
        type=float,
        default=DEFAULT_GRACE,
        metavar="S",
        help=f"seconds requests in flight get after the first signal (default {DEFAULT_GRACE:g})",
    )
    parser.add_argument(
        "--health-port",
        type=int,
        default=None,
        metavar="P",
        help="serve /livez, /readyz (and /metrics with prometheus_client) on this port",
    )
    parser.add_argument(
        "--health-host",
        default="0.0.0.0",
        help="address the probes listen on (default 0.0.0.0)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="run N processes of the target, each its own node (default 1)",
    )
    # A worker's pipes to its parent (internal).
    parser.add_argument("--report-fd", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--lifeline-fd", type=int, default=None, help=argparse.SUPPRESS)
    parser.set_defaults(run=run, _parser=parser)


def run(args: argparse.Namespace) -> int:
    """The ``run`` subcommand; returns the exit code."""
    parser: argparse.ArgumentParser = args._parser
    if args.grace < 0:
        parser.error("--grace must be zero or more seconds")
    if args.workers < 1:
        parser.error("--workers must be 1 or more")
    if args.health_port is not None and not 0 <= args.health_port <= 65535:
        parser.error("--health-port must be a TCP port (0-65535)")
    try:
        target = load_target(args.target)
    except TargetError as exc:
        print(f"coterie run: error: {exc}", file=sys.stderr)
        return 2
    main: Coroutine[Any, Any, int]
    main = _supervise(args) if args.workers > 1 else _serve_one(target, args)
    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        return runner.run(main)


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop when it is installed, else asyncio's."""
    try:
        import uvloop
    except ImportError:
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def load_target(spec: str) -> Any:
    """Import ``MODULE:ATTR`` from the current directory or ``PYTHONPATH``.

    Returns:
        The attribute, checked to be servable (not yet called, if a factory).

    Raises:
        TargetError: It does not import, has no such attribute, or is of
            another type; the message says what to change.
    """
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise TargetError(f"{spec!r} is not MODULE:ATTR (for example 'services:responder')")
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and module_name.startswith(exc.name):
            raise TargetError(
                f"no module {module_name!r} in the current directory ({os.getcwd()}) "
                "or on PYTHONPATH"
            ) from None
        raise TargetError(f"module {module_name!r} failed to import: {exc}") from exc
    except Exception as exc:
        raise TargetError(
            f"module {module_name!r} failed to import: {type(exc).__name__}: {exc}"
        ) from exc
    value: Any = module
    for part in attr.split("."):
        if not hasattr(value, part):
            raise TargetError(f"module {module_name!r} has no attribute {attr!r}")
        value = getattr(value, part)
    if (
        isinstance(value, Component)
        or inspect.iscoroutinefunction(value)
        or inspect.isasyncgenfunction(value)
    ):
        return value
    if isinstance(value, list | tuple) and value and all(isinstance(c, Component) for c in value):
        return value
    raise TargetError(
        f"{spec} is {_describe(value)}: give a component, a list of components, or an async "
        "factory (async def, or an async generator) that returns or yields them"
    )


def _describe(value: Any) -> str:
    if isinstance(value, list | tuple):
        if not value:
            return "an empty list"
        wrong = next(c for c in value if not isinstance(c, Component))
        return f"a list holding {type(wrong).__name__} {wrong!r:.60}"
    if callable(value):
        return f"a plain callable {getattr(value, '__name__', value)!r} (not async)"
    return f"{type(value).__name__} {value!r:.60}"


def resolve_components(value: Any, spec: str) -> list[Component]:
    """What a target or its factory gave, as a list of components.

    Raises:
        TargetError: It is not a component or a non-empty list of them.
    """
    found = list(value) if isinstance(value, list | tuple) else [value]
    if not found or not all(isinstance(c, Component) for c in found):
        raise TargetError(
            f"{spec} gave {_describe(value)}: its factory must return or yield a component "
            "or a list of components"
        )
    return found


async def _serve_one(target: Any, args: argparse.Namespace) -> int:
    stopper: Callable[[], Awaitable[None]] | None = None
    generator: AsyncGenerator[Any, None] | None = None
    try:
        if inspect.isasyncgenfunction(target):
            generator = target()
            components = resolve_components(await anext(generator), args.target)

            async def stopper() -> None:
                with contextlib.suppress(StopAsyncIteration):
                    await anext(generator)

        elif inspect.iscoroutinefunction(target):
            components = resolve_components(await target(), args.target)
        else:
            components = resolve_components(target, args.target)
    except TargetError as exc:
        print(f"coterie run: error: {exc}", file=sys.stderr)
        return 2
    report = _reporter(args.report_fd)
    health = None
    if args.health_port is not None:
        health = Health(args.health_port, args.health_host, metrics=_process_metrics())
        log.info("probes on http://%s:%d/livez and /readyz", args.health_host, health.port)
    serving = Serving(components, grace=args.grace, health=health, on_stop=stopper, on_ready=report)
    if args.lifeline_fd is not None:
        _watch_lifeline(args.lifeline_fd, serving)
    try:
        log.info("serving %s (%s)", args.target, ", ".join(repr(c) for c in components))
        await serving.run()
    finally:
        if health is not None:
            health.close()
        if generator is not None:
            await generator.aclose()
    log.info("stopped")
    return 0


def _process_metrics() -> Any:
    """The process-wide metrics for ``/metrics``, or ``None`` without prometheus_client."""
    try:
        import coterie.metrics

        return coterie.metrics.default()
    except ImportError:
        return None


def _reporter(fd: int | None) -> Callable[[bool], None] | None:
    if fd is None:
        return None

    def report(ready: bool) -> None:
        with contextlib.suppress(OSError):  # the parent is gone: the lifeline says so
            os.write(fd, _READY if ready else _UNREADY)

    return report


def _watch_lifeline(fd: int, serving: Serving) -> None:
    loop = asyncio.get_running_loop()

    def readable() -> None:
        try:
            data = os.read(fd, 64)
        except OSError:
            data = b""
        if not data:  # the parent is gone
            loop.remove_reader(fd)
            if not serving.stop.is_set():
                log.warning("the parent process is gone: stopping")
                serving.begin_stop()

    loop.add_reader(fd, readable)


class _Worker:
    """One child process of ``--workers`` and what it last said."""

    def __init__(
        self, index: int, proc: asyncio.subprocess.Process, report: int, lifeline: int
    ) -> None:
        self.index = index
        self.proc = proc
        #: Where the worker writes its readiness (read here).
        self.report = report
        #: Never written; it closes when this process ends, which tells the worker.
        self.lifeline = lifeline
        self.ready = False


async def _supervise(args: argparse.Namespace) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    signals = 0

    def on_signal(sig: signal.Signals) -> None:
        nonlocal signals
        signals += 1
        if health is not None:
            health.stopping = True
        for worker in workers:
            if worker.proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    worker.proc.send_signal(signal.SIGTERM)
        if signals == 1:
            log.info(
                "%s: stopping %d worker(s) (%s again quits at once)",
                sig.name,
                len(workers),
                sig.name,
            )
            stop.set()
            return
        quit_at_once(sig)

    health = None
    if args.health_port is not None:
        health = Health(args.health_port, args.health_host)
        log.info("probes on http://%s:%d/livez and /readyz", args.health_host, health.port)
    workers: list[_Worker] = []
    for sig in SIGNALS:
        loop.add_signal_handler(sig, on_signal, sig)
    beating = asyncio.ensure_future(_beat(health, workers))
    try:
        for index in range(args.workers):
            workers.append(await _spawn(index, args, loop))
        waits = {asyncio.ensure_future(w.proc.wait()): w for w in workers}
        failed = False
        pending = set(waits)
        stopping = asyncio.ensure_future(stop.wait())
        while pending:
            done, pending = await asyncio.wait(
                pending | {stopping}, return_when=asyncio.FIRST_COMPLETED
            )
            pending.discard(stopping)
            for fut in done - {stopping}:
                worker = waits[fut]
                code = worker.proc.returncode
                if not stop.is_set() or code != 0:
                    failed = True
                    log.error(
                        "worker %d (pid %d) exited with code %s%s",
                        worker.index,
                        worker.proc.pid,
                        code,
                        "" if stop.is_set() else ": stopping the others",
                    )
                if not stop.is_set():
                    on_signal(signal.SIGTERM)
        stopping.cancel()
        return 1 if failed else 0
    finally:
        beating.cancel()
        for sig in SIGNALS:
            loop.remove_signal_handler(sig)
        for worker in workers:
            with contextlib.suppress(OSError, ValueError):
                loop.remove_reader(worker.report)
                os.close(worker.report)
                os.close(worker.lifeline)
        if health is not None:
            health.close()


async def _spawn(index: int, args: argparse.Namespace, loop: asyncio.AbstractEventLoop) -> _Worker:
    report_r, report_w = os.pipe()
    life_r, life_w = os.pipe()
    command = [
        sys.executable, "-m", "coterie", "run", args.target,
        "--grace", repr(args.grace),
        "--report-fd", str(report_w),
        "--lifeline-fd", str(life_r),
    ]  # fmt: skip
    if args.verbose:
        command.append("-v")
    elif args.quiet:
        command.append("-q")
    proc = await asyncio.create_subprocess_exec(
        *command, pass_fds=(report_w, life_r), start_new_session=True
    )
    os.close(report_w)
    os.close(life_r)
    worker = _Worker(index, proc, report_r, life_w)

    def readable() -> None:
        try:
            data = os.read(report_r, 64)
        except OSError:
            data = b""
        if not data:
            loop.remove_reader(report_r)
            worker.ready = False
            return
        worker.ready = data[-1:] == _READY

    loop.add_reader(report_r, readable)
    log.info("worker %d: pid %d", index, proc.pid)
    return worker


async def _beat(health: Health | None, workers: list[_Worker]) -> None:
    while True:
        if health is not None:
            health.beat()
            health.ready = bool(workers) and all(
                w.ready and w.proc.returncode is None for w in workers
            )
        await asyncio.sleep(HEARTBEAT)
