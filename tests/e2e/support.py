"""Helpers for end-to-end tests: free ports, child processes, HTTP payments."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from coterie import DiscoveryOptions
from coterie.gateways.nginx import find_nginx

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples" / "payment"
PY = sys.executable
HELLO_MS = 100
NGINX = find_nginx()

needs_nginx = pytest.mark.skipif(
    NGINX is None,
    reason="nginx is not installed (scripts/system-deps.sh installs nginx-light)",
)


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def fast_options(port: int) -> DiscoveryOptions:
    return DiscoveryOptions(
        port=port,
        broadcast="127.255.255.255",
        hello_interval=HELLO_MS,
        check_interval=2 * HELLO_MS,
        node_timeout=4 * HELLO_MS,
        master_timeout=5 * HELLO_MS,
    )


def discovery_args(port: int) -> list[str]:
    return ["--discovery-port", str(port), "--hello-interval", str(HELLO_MS)]


@dataclass
class Child:
    name: str
    process: asyncio.subprocess.Process
    log: Path

    @property
    def alive(self) -> bool:
        return self.process.returncode is None

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    async def stop(self, sig: int = signal.SIGTERM, timeout: float = 5.0) -> int:
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(sig)
            try:
                async with asyncio.timeout(timeout):
                    await self.process.wait()
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                await self.process.wait()
        return self.process.returncode or 0


class Children:
    """Starts child processes with logs in a temporary directory; stops them all."""

    def __init__(self, logdir: Path) -> None:
        self.logdir = logdir
        self.started: list[Child] = []

    async def start(self, name: str, *argv: str) -> Child:
        log = self.logdir / f"{name}.log"
        env = dict(os.environ, PYTHONUNBUFFERED="1", COTE_BROADCAST_ADDRESS="127.255.255.255")
        with log.open("ab") as out:
            process = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=out,
                stderr=asyncio.subprocess.STDOUT,
                env=env,
                start_new_session=True,
                cwd=ROOT,
            )
        child = Child(name, process, log)
        self.started.append(child)
        return child

    async def stop_all(self) -> None:
        await asyncio.gather(*(c.stop(timeout=3) for c in self.started))

    def logs(self) -> str:
        return "\n".join(f"--- {c.name}\n{c.output()[-2000:]}" for c in self.started)


@contextlib.asynccontextmanager
async def children(logdir: Path) -> AsyncIterator[Children]:
    group = Children(logdir)
    try:
        yield group
    except BaseException:
        print(group.logs())
        raise
    finally:
        await group.stop_all()


@dataclass
class Paid:
    status: int
    text: str
    by: str


async def pay(
    session: aiohttp.ClientSession, port: int, cardno: str, timeout: float = 10.0
) -> Paid:
    async with session.get(
        f"http://127.0.0.1:{port}/pay/{cardno}", timeout=aiohttp.ClientTimeout(total=timeout)
    ) as response:
        body = await response.json(content_type=None)
        assert isinstance(body, str), body
        return Paid(response.status, body, response.headers.get("X-Validated-By", ""))


async def wait_until_validated(
    session: aiohttp.ClientSession,
    port: int,
    cardno: str,
    *,
    distinct: int = 1,
    timeout: float = 15.0,
    procs: Children | None = None,
) -> set[str]:
    """Pay until ``distinct`` validators have answered; returns their names."""
    seen: set[str] = set()
    deadline = time.monotonic() + timeout
    while len(seen) < distinct:
        if time.monotonic() > deadline:
            raise AssertionError(
                f"only {seen} answered on :{port} within {timeout} s\n"
                + (procs.logs() if procs else "")
            )
        with contextlib.suppress(aiohttp.ClientError, TimeoutError):
            answer = await pay(session, port, cardno, timeout=2.0)
            if answer.status == 200:
                seen.add(answer.by)
                continue
        await asyncio.sleep(0.05)
    return seen
