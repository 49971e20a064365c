"""Run the real ``coterie`` command in a subprocess, as a user runs it.

:func:`coterie` starts ``python -m coterie -q ARGS`` with host-scope discovery
(``COTE_BROADCAST_ADDRESS=127.255.255.255``) on the test's discovery port and
the tests' hello interval (and without ``PYTHONUNBUFFERED``, so output to a
pipe is buffered unless the command flushes it), feeds ``stdin`` and returns the exit code, stdout
and stderr. Every run is bounded by a timeout (in :data:`tests.helpers.MS`),
past which the process is killed and the test fails with what it printed.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass

from tests.helpers import FAST_TIMINGS, HOST_SCOPE, MS, ms

__all__ = ["Run", "coterie", "discovery_flags", "request_ids_hidden", "start_coterie"]


@dataclass(frozen=True)
class Run:
    """A finished command: exit code and output."""

    code: int
    out: str
    err: str

    def __str__(self) -> str:
        return f"exit {self.code}\n--- stdout ---\n{self.out}\n--- stderr ---\n{self.err}"


def discovery_flags(port: int, hello_interval: int | None = None) -> list[str]:
    """The discovery flags that put the command on the test's mesh."""
    interval = ms(FAST_TIMINGS["hello_interval"]) if hello_interval is None else hello_interval
    return ["--discovery-port", str(port), "--hello-interval", str(interval)]


def _env(extra: Mapping[str, str] | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COTE_", "COTERIE_TLS"))}
    env.pop("COTERIE_LINK_SECRET", None)
    env.pop("PYTHONUNBUFFERED", None)  # stdout to a pipe is block-buffered, as for a user
    env["COTE_BROADCAST_ADDRESS"] = HOST_SCOPE
    env.update(extra or {})
    return env


async def start_coterie(
    *args: str, env: Mapping[str, str] | None = None, quiet: bool = True
) -> asyncio.subprocess.Process:
    """Start ``python -m coterie [-q] ARGS`` with pipes on stdin, stdout and stderr."""
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "coterie", *(["-q"] if quiet else []), *args,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, env=_env(env),
    )  # fmt: skip


async def coterie(
    *args: str,
    stdin: str | None = None,
    env: Mapping[str, str] | None = None,
    quiet: bool = True,
    timeout: float = 20_000 * MS,
) -> Run:
    """Run ``python -m coterie [-q] ARGS`` to its end; see the module docstring."""
    proc = await start_coterie(*args, env=env, quiet=quiet)
    try:
        async with asyncio.timeout(timeout):
            out, err = await proc.communicate(None if stdin is None else stdin.encode())
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        out, err = await proc.communicate()
        raise AssertionError(
            f"coterie {' '.join(args)} ran past {timeout:.1f} s\n{out.decode()}\n{err.decode()}"
        ) from None
    assert proc.returncode is not None
    return Run(proc.returncode, out.decode(), err.decode())


def request_ids_hidden(text: str) -> str:
    """``text`` with request ids (``pid:n``) written ``ID``: they differ between processes."""
    return re.sub(r"request \d+:\d+ ", "request ID ", text)
