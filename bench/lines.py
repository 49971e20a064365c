"""The JSON-lines process side that ``bench/worker.py`` and ``bench/echo.py`` share.

Both run as ``python -m bench.<module> <role> '<json config>'``, write events
to stdout, read commands from stdin and time ``bench`` commands with
:func:`bench.drive.drive`. Like that module, this one imports nothing from
coterie, so the echo stays bare.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any

from bench.drive import drive


def emit(obj: dict[str, Any]) -> None:
    """Write one event line to stdout."""
    sys.stdout.write(json.dumps(obj, separators=(",", ":")) + "\n")
    sys.stdout.flush()


async def commands(report_bad: bool = False) -> AsyncIterator[dict[str, Any]]:
    """The commands on stdin, one JSON object a line, up to ``exit`` or end of input.

    Blank lines are skipped. A line that is not JSON raises :exc:`ValueError`,
    or with ``report_bad`` is reported as an ``error`` event and skipped.
    """
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 24)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while True:
        line = await reader.readline()
        if not line:
            return
        if not line.strip():
            continue
        try:
            cmd = json.loads(line)
        except ValueError:
            if not report_bad:
                raise
            emit({"event": "error", "message": f"stdin line is not JSON: {line!r}"})
            continue
        if cmd.get("cmd") == "exit":
            return
        yield cmd


async def bench(send: Callable[..., Awaitable[Any]], req: Any, cmd: dict[str, Any]) -> None:
    """Run one ``bench`` command: :func:`drive` ``send`` with ``req``, emit the result."""
    timeout = cmd.get("timeout")
    emit(
        await drive(
            send,
            req,
            int(cmd["n"]),
            int(cmd.get("concurrency") or 1),
            bound=timeout / 1000 if timeout else None,
            latencies=bool(cmd.get("latencies")),
            completions=bool(cmd.get("completions")),
        )
    )


async def bench_commands(
    send: Callable[..., Awaitable[Any]], request: Callable[[dict[str, Any]], Any], who: str
) -> None:
    """Run every ``bench`` command on stdin as a task, until ``exit``; cancel what is left.

    Args:
        send: What :func:`drive` awaits per request.
        request: The request to send, from the command.
        who: Names this side in the error for a command it does not take.
    """
    loop = asyncio.get_running_loop()
    tasks: set[asyncio.Task[None]] = set()
    async for cmd in commands():
        if cmd.get("cmd") == "bench":
            task = loop.create_task(bench(send, request(cmd), cmd))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        else:
            emit({"event": "error", "message": f"command not understood by {who}: {cmd}"})
    for task in list(tasks):
        task.cancel()


def loop_name() -> str:
    """``uvloop`` or ``asyncio``: which event loop runs."""
    return type(asyncio.get_running_loop()).__module__.split(".")[0]


def main(
    argv: list[str],
    roles: tuple[str, ...],
    start: Callable[[str, dict[str, Any]], Coroutine[Any, Any, None]],
) -> int:
    """Run ``start(role, config)`` from ``argv`` on uvloop (when installed) to its end.

    Returns the exit code: 2 for a bad role or config, 1 when the run fails.
    """
    if len(argv) < 1 or argv[0] not in roles:
        emit({"event": "error", "message": f"role must be one of {', '.join(roles)}"})
        return 2
    try:
        config = json.loads(argv[1]) if len(argv) > 1 else {}
    except ValueError as exc:
        emit({"event": "error", "message": f"config is not JSON: {exc}"})
        return 2
    coro = start(argv[0], config)
    try:
        import uvloop

        runner: Any = uvloop.run
    except ImportError:
        runner = asyncio.run
    try:
        runner(coro)
    except Exception as exc:
        emit({"event": "error", "message": f"{type(exc).__name__}: {exc}"})
        return 1
    return 0
