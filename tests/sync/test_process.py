"""coterie.sync in real processes: a script's exit, and forked children.

A Python responder runs on the test's loop; ``tests/sync/caller.py`` calls
it from its own process. Its lines carry ``time.monotonic()``, which every
process of this machine shares, so the test measures the time from the
script's answer to its exit.
"""

from __future__ import annotations

import ast
import asyncio
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import coterie
from tests.helpers import MS, DiscoveryFactory

CALLER = Path(__file__).with_name("caller.py")
ROOT = Path(__file__).resolve().parents[2]


async def _run(port: int, mode: str) -> tuple[list[dict[str, Any]], float, int]:
    """Run the caller; its lines, the time it exited (monotonic) and its exit code."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.sync.caller",
        str(port),
        mode,
        cwd=ROOT,
        env={**os.environ, "COTE_BROADCAST_ADDRESS": "127.255.255.255"},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(30_000 * MS):
            out, err = await proc.communicate()
    finally:
        if proc.returncode is None:
            proc.kill()
    exited = time.monotonic()
    assert proc.returncode == 0, err.decode()
    return [json.loads(line) for line in out.decode().splitlines()], exited, proc.returncode


@pytest.fixture
async def responder(disc: DiscoveryFactory) -> Any:
    async with coterie.Responder("validation", discovery=disc()) as responder:
        responder.on("validate", lambda req: {"ok": True, "pid": os.getpid()})
        yield responder


def test_the_script_imports_no_asyncio() -> None:
    tree = ast.parse(CALLER.read_text())
    imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert "coterie.sync" in imported
    assert not any(name.split(".")[0] == "asyncio" for name in imported)


@pytest.mark.parametrize("mode", ["close", "no-close"])
async def test_a_script_exits_within_a_second_of_its_answer(
    responder: coterie.Responder, disc_port: int, mode: str
) -> None:
    (line,), exited, _ = await _run(disc_port, mode)
    assert line["answer"] == {"ok": True, "pid": os.getpid()}
    assert exited - line["at"] < 1_000 * MS


async def test_a_pending_call_never_holds_up_the_exit(
    responder: coterie.Responder, disc_port: int
) -> None:
    (answered, leaving), exited, _ = await _run(disc_port, "stuck")
    assert answered["answer"] == {"ok": True, "pid": os.getpid()}
    assert leaving["answer"] == "leaving"
    assert exited - leaving["at"] < 1_000 * MS


@pytest.mark.parametrize("mode", ["fork", "used-fork"])
async def test_forked_children_call_on_their_own_loop(
    responder: coterie.Responder, disc_port: int, mode: str
) -> None:
    lines, _, _ = await _run(disc_port, mode)
    parent_pid = lines[-1]["pid"]
    children = [line for line in lines if line.get("role") == "child"]
    assert len(children) == 2
    assert len({line["pid"] for line in children} | {parent_pid}) == 3
    assert all(line["answer"] == {"ok": True, "pid": os.getpid()} for line in lines)
    assert lines[-1]["role"] == "parent"


async def test_ctrl_c_interrupts_a_waiting_call_and_withdraws_it(disc_port: int) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.sync.caller", str(disc_port), "interrupt", cwd=ROOT,
        env={**os.environ, "COTE_BROADCAST_ADDRESS": "127.255.255.255"},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None
    try:
        async with asyncio.timeout(30_000 * MS):
            assert json.loads(await proc.stdout.readline())["answer"] == "waiting"
            await asyncio.sleep(300 * MS)  # it is in send() by then
            proc.send_signal(signal.SIGINT)
            line = json.loads(await proc.stdout.readline())
            assert proc.stderr is not None
            err = await proc.stderr.read()
            await proc.wait()
    finally:
        if proc.returncode is None:
            proc.kill()
    assert line["answer"] == "interrupted"
    assert line["waiting"] == 0  # the request was withdrawn from the requester
    assert proc.returncode == 0, err.decode()
