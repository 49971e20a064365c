"""Idle resident memory of a plain coterie responder and requester, each in a fresh process.

Usage::

    .venv/bin/python scripts/idle_rss.py [--rounds 3] [--idle 1.0] [--burst 200]
        [--build pure compiled]

Each round, for each build (``pure``: ``COTERIE_NO_EXTENSIONS=1``;
``compiled``: the mypyc modules of ``make setup``), fresh processes on uvloop:

- *alone*: a ``Responder`` with one handler, and separately a ``Requester``
  with no responder to find, each started and left idle ``--idle`` seconds;
- *linked*: a requester linked to that responder sends ``--burst`` requests,
  then both idle ``--idle`` seconds (what ``python -m bench --only rss``
  measures, without the bench's own driver code in the processes).

VmRSS is read from ``/proc/self/status``; the table gives the median of the
rounds in MiB, with the range. Discovery stays on this host: every child runs
with ``COTE_BROADCAST_ADDRESS=127.255.255.255`` (whatever the environment
says) and a key of its own, so concurrent runs do not link to each other.
The coterie measured is the one the interpreter imports (``make setup``
installs the checkout's, editable), so running this file with another
checkout's ``.venv/bin/python`` measures that checkout. Linux only
(``/proc``). A child imports nothing beyond coterie, uvloop and
what they load (``json`` and ``os`` are loaded by them anyway); the driver's
own modules (argparse, subprocess, pathlib) are imported by the driver only.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import subprocess

HOST_SCOPE = "127.255.255.255"
BUILDS = ("pure", "compiled")
#: A child's whole command line program (``python -c``).
CHILD = (
    f"import sys; sys.path[:0] = [{os.path.dirname(os.path.abspath(__file__))!r}]; "
    "import idle_rss; sys.exit(idle_rss.run_child(sys.argv[1:]))"
)
FIGURES = ("responder alone", "requester alone", "responder linked", "requester linked")


# -- the children ---------------------------------------------------------------------


def status() -> dict[str, Any]:
    """This process's VmRSS (MiB), thread count and number of loaded modules."""
    with open("/proc/self/status", encoding="ascii") as f:
        fields = dict(line.split(":", 1) for line in f if ":" in line)
    return {
        "rss": int(fields["VmRSS"].split()[0]) / 1024,
        "threads": int(fields["Threads"]),
        "modules": len(sys.modules),
    }


def say(event: str, **fields: Any) -> None:
    """One JSON line on stdout."""
    print(json.dumps({"event": event, **fields}), flush=True)


async def wait_for_input() -> bytes:
    """What stdin has next (``b""`` at its end), waited for on the loop.

    A reader callback, not a thread: the default executor's thread (and its
    malloc arena) would be counted in the next report.
    """
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[None] = loop.create_future()
    fd = sys.stdin.fileno()
    loop.add_reader(fd, lambda: ready.done() or ready.set_result(None))
    try:
        await ready
    finally:
        loop.remove_reader(fd)
    return os.read(fd, 4096)


async def child(role: str, key: str, idle: float, burst: int) -> None:
    """Run one component, idle, report; then wait for ``measure`` lines until stdin ends.

    The responder answers ``echo``. The requester with ``burst`` > 0 first
    waits for a responder and sends that many requests.
    """
    import coterie

    component: Any
    if role == "responder":
        component = coterie.Responder("idle-rss responder", key=key)
        component.on("echo", lambda req: req)
    else:
        component = coterie.Requester("idle-rss requester", key=key)
    async with component:
        if burst:
            await component.wait_connected(1, timeout=30)
            for n in range(burst):
                await component.send({"type": "echo", "n": n}, timeout=5)
        await asyncio.sleep(idle)
        say("rss", **status())
        while await wait_for_input():
            await asyncio.sleep(idle)
            say("rss", **status())


# -- the driver -----------------------------------------------------------------------


class Child:
    """A child process of this script, speaking JSON lines."""

    def __init__(self, build: str, role: str, key: str, idle: float, burst: int) -> None:
        import subprocess

        env = {**os.environ, "COTE_BROADCAST_ADDRESS": HOST_SCOPE}
        env.pop("COTERIE_NO_EXTENSIONS", None)
        if build == "pure":
            env["COTERIE_NO_EXTENSIONS"] = "1"
        else:
            env["COTERIE_REQUIRE_EXTENSIONS"] = "1"  # fail rather than measure pure twice
        # The child imports this file as a module, so from its cached bytecode:
        # compiling it (as ``__main__`` is) would leave its peak in the heap.
        args = [sys.executable, "-c", CHILD, role, key, str(idle), str(burst)]
        self.proc: subprocess.Popen[str] = subprocess.Popen(
            args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env
        )

    def report(self) -> dict[str, Any]:
        """The child's next report."""
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"child exited with {self.proc.wait()} before reporting")
        report: dict[str, Any] = json.loads(line)
        return report

    def measure(self) -> dict[str, Any]:
        """Ask for another report (after another idle period)."""
        assert self.proc.stdin is not None
        self.proc.stdin.write("measure\n")
        self.proc.stdin.flush()
        return self.report()

    def close(self) -> None:
        """End the child (stdin closed) and reap it."""
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except Exception:  # subprocess.TimeoutExpired
            self.proc.kill()
            self.proc.wait()


def one_round(build: str, key: str, idle: float, burst: int) -> dict[str, dict[str, Any]]:
    """The four figures of one build, from fresh processes."""
    found: dict[str, dict[str, Any]] = {}
    requester = Child(build, "requester", key + "-alone", idle, 0)
    try:
        found["requester alone"] = requester.report()
    finally:
        requester.close()
    responder = Child(build, "responder", key, idle, 0)
    try:
        found["responder alone"] = responder.report()
        requester = Child(build, "requester", key, idle, burst)
        try:
            found["requester linked"] = requester.report()
            found["responder linked"] = responder.measure()
        finally:
            requester.close()
    finally:
        responder.close()
    return found


def run_child(argv: list[str]) -> int:
    """``ROLE KEY IDLE BURST``: one component in this process (see :data:`CHILD`)."""
    role, key, idle, burst = argv
    os.environ["COTE_BROADCAST_ADDRESS"] = HOST_SCOPE  # host scope, whatever the caller set
    try:
        import uvloop
    except ImportError:
        asyncio.run(child(role, key, float(idle), int(burst)))
    else:
        uvloop.run(child(role, key, float(idle), int(burst)))
    return 0


def main(argv: list[str]) -> int:
    """Run the rounds and print the table."""
    import argparse
    import statistics

    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--idle", type=float, default=1.0, help="seconds idle before reading")
    parser.add_argument("--burst", type=int, default=200, help="requests of the linked requester")
    parser.add_argument("--build", nargs="+", choices=BUILDS, default=list(BUILDS))
    args = parser.parse_args(argv)
    results: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for n in range(args.rounds):
        for build in args.build:
            key = f"idle-rss-{os.getpid()}-{n}-{build}"
            for figure, report in one_round(build, key, args.idle, args.burst).items():
                results.setdefault((build, figure), []).append(report)
            print(f"round {n + 1}/{args.rounds} {build} done", file=sys.stderr, flush=True)
    print(f"idle RSS, MiB (median of {args.rounds}, range; uvloop, host scope, {args.idle} s idle)")
    print(f"{'build':9} {'figure':17} {'median':>7} {'range':>13} {'threads':>7} {'modules':>7}")
    for build in args.build:
        for figure in FIGURES:
            reports = results[(build, figure)]
            rss = [r["rss"] for r in reports]
            print(
                f"{build:9} {figure:17} {statistics.median(rss):7.2f} "
                f"{min(rss):6.2f}–{max(rss):6.2f} {reports[-1]['threads']:7} "
                f"{reports[-1]['modules']:7}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
