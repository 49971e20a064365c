"""Helpers for end-to-end tests: free ports, child processes, HTTP payments."""

from __future__ import annotations

import asyncio
import contextlib
import os
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import aiohttp
import pytest

from coterie import DiscoveryOptions
from coterie.gateways.nginx import find_nginx

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples" / "payment"
PY = sys.executable
HELLO_MS = 100
#: A card number that passes validation.
GOOD = "4111111111111111"
#: The end of the last line the demo prints before it waits for Ctrl-C.
READY = "# one more mesh validator, in a new shell too\n"
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


def demo_argv(*options: str) -> list[str]:
    """``python -m examples.payment.demo`` on free ports with fast discovery, then ``options``."""
    return [
        PY,
        "-m",
        "examples.payment.demo",
        "--mesh-port",
        str(free_port()),
        "--nginx-payment-port",
        str(free_port()),
        "--nginx-port",
        str(free_port()),
        "--discovery-port",
        str(free_port(socket.SOCK_DGRAM)),
        "--hello-interval",
        str(HELLO_MS),
        *options,
    ]


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


async def start_payment(procs: Children, dport: int, port: int, *options: str) -> Child:
    """Start ``payment_service.py`` on ``port`` (discovery on ``dport``) with ``options``."""
    return await procs.start(
        "payment",
        PY,
        str(EXAMPLES / "payment_service.py"),
        "--port",
        str(port),
        *options,
        *discovery_args(dport),
    )


async def start_validator(
    procs: Children, dport: int, ident: str, *options: str, name: str | None = None
) -> Child:
    """Start ``validation_service.py --id ident`` (discovery on ``dport``) with ``options``.

    ``name`` names the child (its log); ``ident`` by default.
    """
    return await procs.start(
        name or ident,
        PY,
        str(EXAMPLES / "validation_service.py"),
        "--id",
        ident,
        *options,
        *discovery_args(dport),
    )


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


def read_until_ready(out: IO[bytes], timeout: float = 60) -> str:
    """The demo's output up to and including the line that says it waits for Ctrl-C."""
    seen = b""
    deadline = time.monotonic() + timeout
    while READY.encode() not in seen:
        left = deadline - time.monotonic()
        assert left > 0, f"the demo did not get ready:\n{seen.decode(errors='replace')}"
        readable, _, _ = select.select([out], [], [], min(left, 0.5))
        if readable:
            chunk = os.read(out.fileno(), 65536)
            assert chunk, f"the demo ended early:\n{seen.decode(errors='replace')}"
            seen += chunk
    return seen.decode(errors="replace")


def demo_env(tmp: Path | None = None) -> dict[str, str]:
    """The demo's environment in tests: host scope; its temporary directory in ``tmp``."""
    env = {**os.environ, "COTE_BROADCAST_ADDRESS": "127.255.255.255"}
    if tmp is not None:
        env["TMPDIR"] = str(tmp)
    return env


def workdirs(tmp: Path) -> list[Path]:
    """The demo working directories in ``tmp``."""
    return sorted(tmp.glob("coterie-demo-*"))


@contextlib.contextmanager
def started(argv: list[str], tmp: Path | None = None) -> Iterator[subprocess.Popen[bytes]]:
    """Start ``argv`` in a session of its own (its own process group, as a job in a shell).

    ``tmp``: its temporary directory (``TMPDIR``).
    """
    proc = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        cwd=ROOT,
        start_new_session=True,
        env=demo_env(tmp),
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()
