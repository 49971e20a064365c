"""The demo's command line: options, signals, and the run from start to stop.

Design: :func:`main` parses the options (each run gets its own cote
environment, ``demo-<mesh port>``, so two demos on one host never share a
mesh), checks that aiohttp and rich are there, and runs :func:`run_demo` in
an event loop where SIGINT, SIGTERM, SIGHUP and a closed output pipe set a
stop event (a second signal exits at
once). :func:`run_demo` starts every process, waits until each payment
service answers through every validator, tours, then waits for the stop
event (unless ``--no-wait``) and always stops every process it started.

No process outlives the demo: the children get SIGTERM from the kernel when
the demo dies, however it dies (``die_with_parent`` in
:mod:`examples.payment.demo.processes`), and the shutdown path cannot be cut
short by a print into a closed pipe (:mod:`examples.payment.demo.output`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Sequence
from typing import TYPE_CHECKING, Any

from coterie.gateways.nginx import find_nginx
from examples.payment.demo.output import GuardedOutput

if TYPE_CHECKING:
    from examples.payment.demo.console import Screen

__all__ = ["build_parser", "main", "run_demo"]

#: Signals that stop the demo (SIGHUP: its terminal closed).
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def build_parser() -> argparse.ArgumentParser:
    """The demo's options."""
    parser = argparse.ArgumentParser(
        prog="python -m examples.payment.demo",
        description=(
            "Start the payment example twice on this host: over the coterie mesh "
            "(port 3003) and behind nginx with discovery-driven upstreams (port 3000), "
            "each with several validators; tour the difference, then stay up for curl "
            "until Ctrl-C."
        ),
    )
    parser.add_argument("--mesh-port", type=int, default=3003, help="mesh payment port (3003)")
    parser.add_argument(
        "--nginx-payment-port", type=int, default=3000, help="nginx payment port (3000)"
    )
    parser.add_argument(
        "--nginx-port", type=int, default=8080, help="port nginx listens on for validation (8080)"
    )
    parser.add_argument(
        "--validators", type=int, default=2, help="validators of each kind (default 2)"
    )
    parser.add_argument("--no-nginx", action="store_true", help="run the mesh half only")
    parser.add_argument("--no-tour", action="store_true", help="start everything, skip the tour")
    parser.add_argument(
        "--no-wait", action="store_true", help="exit after the tour instead of waiting for Ctrl-C"
    )
    parser.add_argument(
        "--pause",
        type=float,
        default=2.0,
        metavar="SECONDS",
        help="how long validators stay stopped in the tour (default 2)",
    )
    parser.add_argument(
        "--discovery-port",
        type=int,
        default=None,
        metavar="PORT",
        help="discovery UDP port for the demo's processes (default cote's 12345)",
    )
    parser.add_argument(
        "--hello-interval",
        type=int,
        default=250,
        metavar="MS",
        help="milliseconds between hellos (default 250, quick for a demo)",
    )
    parser.add_argument(
        "--environment",
        default=None,
        metavar="NAME",
        help=(
            "cote environment (COTE_ENV) of the demo's processes, so that a second demo "
            "never joins this one's mesh (default demo-<mesh port>)"
        ),
    )
    parser.add_argument("--nginx", default=None, help="nginx binary (default: found)")
    parser.add_argument("--keep-logs", action="store_true", help="keep the log directory")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the demo; returns the exit code.

    Args:
        argv: Arguments without the program name; ``sys.argv[1:]`` by default.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.validators < 1:
        parser.error("--validators must be at least 1")
    if args.pause < 0:
        parser.error("--pause must not be negative")
    if args.environment is None:
        args.environment = f"demo-{args.mesh_port}"
    try:
        import aiohttp  # noqa: F401
        from rich.console import Console
    except ImportError as exc:
        sys.stderr.write(
            f"the demo needs aiohttp and rich ({exc}); "
            "install them with: pip install 'coterie[http,cli]'\n"
        )
        return 1
    from examples.payment.demo.console import Screen

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S"
    )
    output = GuardedOutput(sys.stdout)
    screen = Screen(Console(file=output, highlight=False, soft_wrap=True))  # type: ignore[arg-type]

    async def runner() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()

        def on_signal(sig: signal.Signals) -> None:
            if stop.is_set():  # a second Ctrl-C: quit now; the children die with us
                os._exit(128 + int(sig))
            stop.set()

        output.on_closed = stop.set
        for sig in _STOP_SIGNALS:
            loop.add_signal_handler(sig, on_signal, sig)
        watcher = asyncio.ensure_future(_watch_output(output, stop))
        try:
            return await run_demo(args, screen, stop)
        finally:
            watcher.cancel()
            for sig in _STOP_SIGNALS:
                loop.remove_signal_handler(sig)

    try:
        return asyncio.run(runner())
    except KeyboardInterrupt:
        return 130


async def run_demo(args: argparse.Namespace, screen: Screen, stop: asyncio.Event) -> int:
    """Start, tour, wait for ``stop`` (unless ``--no-wait``), shut down.

    Returns:
        The exit code: 0, or 1 when a port is taken or the demo failed.
    """
    import aiohttp

    from examples.payment.demo.processes import Processes, remove_stale_workdirs
    from examples.payment.demo.tour import tour, wait_ready

    stale = remove_stale_workdirs()
    procs = Processes(args, None if args.no_nginx else find_nginx(args.nginx))
    screen.banner(procs)
    if stale:
        screen.say(f"  [dim]removed what killed demos left: {', '.join(map(str, stale))}[/dim]")
    problems = procs.taken_ports()
    if problems:
        for problem in problems:
            screen.error(problem)
        screen.say(procs.free_ports_hint())
        procs.remove_workdir()
        return 1
    code = 0
    try:
        async with aiohttp.ClientSession() as session:
            with screen.console.status("starting services..."):
                await procs.start_all()
                await _race(stop, wait_ready(session, procs))
            screen.processes(procs)
            if not args.no_tour and not stop.is_set():
                await _race(stop, tour(session, procs, screen))
            if not args.no_wait and not stop.is_set():
                screen.curl_help(procs)
                await stop.wait()
    except RuntimeError as exc:
        screen.error(str(exc))
        code = 1
    finally:
        try:
            screen.say()
            with screen.console.status("stopping..."):
                await procs.stop_all()
        finally:
            await procs.stop_all()  # idempotent; runs even if printing failed
        screen.say("stopped every process of the demo")
        if args.keep_logs or code:
            procs.keep_logs()
            screen.say(f"logs kept in {procs.logs}")
        else:
            procs.remove_workdir()
    return code


async def _watch_output(output: GuardedOutput, stop: asyncio.Event) -> None:
    """Stop the demo when its output pipe closes, even while it prints nothing."""
    while not output.check():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.25)
            return


async def _race(stop: asyncio.Event, work: Awaitable[Any]) -> None:
    """Run ``work`` until it ends or ``stop`` is set (then cancel it)."""
    task = asyncio.ensure_future(work)
    stopper = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopper.cancel()
    if not task.done():
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return
    task.result()
