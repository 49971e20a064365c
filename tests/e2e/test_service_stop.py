"""Ctrl-C on the example's services: a first one stops them within a grace, a second at once.

Each test runs the real program (``payment_service.py``, ``validation_service.py``)
as a subprocess and sends it SIGINT as a terminal's Ctrl-C would. Every wait
is bounded.
"""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
import time
from pathlib import Path

import aiohttp
import pytest

from tests.e2e.support import (
    EXAMPLES,
    GOOD,
    PY,
    ROOT,
    Child,
    Children,
    Paid,
    children,
    free_port,
    pay,
    start_payment,
    start_validator,
)


async def _holding_a_payment(
    procs: Children, session: aiohttp.ClientSession, dport: int, port: int, grace: str
) -> tuple[Child, asyncio.Future[Paid]]:
    """The payment service with ``--grace``, and a payment it holds (no validator runs)."""
    child = await start_payment(procs, dport, port, "--timeout", "30", "--grace", grace)
    await _wait_for(lambda: "payment service on http://" in child.output(), child)
    waiting = asyncio.ensure_future(pay(session, port, GOOD, timeout=20))
    await asyncio.sleep(0.3)  # no validator: the payment waits
    return child, waiting


async def _first_ctrl_c(child: Child) -> None:
    """SIGINT the payment service and wait until it says it is stopping."""
    child.process.send_signal(signal.SIGINT)
    await _wait_for(lambda: "stopping: no new payments" in child.output(), child)


async def _wait_for(condition: object, child: Child, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert child.alive, child.output()
        assert time.monotonic() < deadline, child.output()
        await asyncio.sleep(0.05)


async def _exit_code(child: Child, timeout: float) -> tuple[int, float]:
    started = time.monotonic()
    async with asyncio.timeout(timeout):
        code = await child.process.wait()
    return code, time.monotonic() - started


def _port_listens(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


async def test_a_first_ctrl_c_fails_a_waiting_payment_within_the_grace_and_exits(
    tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    dport, port = free_port(socket.SOCK_DGRAM), free_port()
    async with children(tmp_path) as procs:
        child, waiting = await _holding_a_payment(procs, session, dport, port, "1")
        assert not waiting.done()
        child.process.send_signal(signal.SIGINT)
        answer = await asyncio.wait_for(waiting, 5)
        code, took = await _exit_code(child, 5)
        log = child.output()
    assert (answer.status, answer.text) == (
        503,
        f"{GOOD} validation failed: the payment service stopped before validation answered",
    )
    assert code == 0
    assert took < 3
    stopping = [line for line in log.splitlines() if "stopping" in line]
    assert stopping == [
        "[payment/mesh] stopping: no new payments; 1 in progress get 1 s to finish "
        "(Ctrl-C again to quit at once)"
    ]
    assert not _port_listens(port)


async def test_a_payment_that_completes_within_the_grace_is_answered(
    tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    dport, port = free_port(socket.SOCK_DGRAM), free_port()
    async with children(tmp_path) as procs:
        child, waiting = await _holding_a_payment(procs, session, dport, port, "10")
        await _first_ctrl_c(child)
        # It takes no new work: the port is closed at once...
        assert not _port_listens(port)
        # ...but the payment it holds completes when a validator appears.
        await start_validator(procs, dport, "v1")
        answer = await asyncio.wait_for(waiting, 10)
        code, _ = await _exit_code(child, 5)
    assert (answer.status, answer.text, answer.by) == (200, f"{GOOD} validated", "v1")
    assert code == 0


async def test_a_second_ctrl_c_exits_at_once(
    tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    dport, port = free_port(socket.SOCK_DGRAM), free_port()
    async with children(tmp_path) as procs:
        child, waiting = await _holding_a_payment(procs, session, dport, port, "20")
        await _first_ctrl_c(child)
        child.process.send_signal(signal.SIGINT)
        code, took = await _exit_code(child, 5)
        with pytest.raises(aiohttp.ClientError):
            await asyncio.wait_for(waiting, 5)
        log = child.output()
    assert code == 130
    assert took < 2
    assert "SIGINT again: quitting at once" in log


@pytest.mark.parametrize("http", [False, True], ids=["mesh", "http"])
async def test_a_validator_stops_on_the_first_ctrl_c_and_says_so(
    tmp_path: Path, http: bool
) -> None:
    dport = free_port(socket.SOCK_DGRAM)
    extra = ["--http", str(free_port())] if http else []
    async with children(tmp_path) as procs:
        child = await start_validator(procs, dport, "v1", *extra)
        await _wait_for(lambda: "v1: " in child.output(), child)
        child.process.send_signal(signal.SIGINT)
        code, took = await _exit_code(child, 5)
        log = child.output()
    assert code == 0
    assert took < 3
    assert [line for line in log.splitlines() if "stopping" in line] == [
        "[v1] v1: stopping: no new requests; 2 s for those in progress (Ctrl-C again to quit)"
    ]


@pytest.mark.parametrize(
    ("program", "flag", "name"),
    [
        ("validation_service.py", "--http", "validation service"),
        ("payment_service.py", "--port", "payment service"),
    ],
)
def test_a_port_in_use_is_one_line_and_exit_1(program: str, flag: str, name: str) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        done = subprocess.run(
            [PY, str(EXAMPLES / program), flag, str(port), "--discovery-port", str(free_port())],
            capture_output=True,
            text=True,
            timeout=30,
            cwd=ROOT,
        )
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert done.stderr.splitlines()[-1] == (
        f"{name}: cannot listen on 127.0.0.1:{port}: Address already in use"
    )
