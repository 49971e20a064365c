"""Worker processes as the bench driver sees them: spawn, talk, kill.

Design: one :class:`Proc` per process (a Python ``bench.worker``, a Node
``interop/peer.js``, or the bare echo ``bench.echo``). All speak the same
JSON-lines protocol, so the scenarios only pick an :class:`Impl` and never
care which side runs. A reader task turns stdout lines into events on a
queue; every wait has a timeout, and :meth:`Proc.stop` ends with ``kill``
when ``exit`` is not obeyed, so no bench leaves a process behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PEER_JS = ROOT / "interop" / "peer.js"

#: Host scope for every Python component the bench starts.
HOST_SCOPE = "127.255.255.255"


class BenchError(RuntimeError):
    """A worker misbehaved or did not answer in time."""


@dataclass(frozen=True)
class Impl:
    """One implementation under test: how to start its workers."""

    name: str
    key: str
    #: Extra discovery config passed to every worker (peer.js camelCase).
    discovery: dict[str, Any] = field(default_factory=dict)
    #: The Python module a worker of this implementation runs (not for Node).
    module: str = "bench.worker"

    @property
    def is_node(self) -> bool:
        """True for Node cote."""
        return self.name == "cote"

    def command(self, role: str, config: dict[str, Any]) -> list[str]:
        """The argv of a worker of this implementation."""
        text = json.dumps(config)
        if self.is_node:
            return ["node", str(PEER_JS), role, text]
        return [sys.executable, "-m", self.module, role, text]

    def config(self, **extra: Any) -> dict[str, Any]:
        """A worker config with this implementation's key and discovery timing."""
        config: dict[str, Any] = {"key": self.key, "quiet": True}
        if self.discovery:
            config["discovery"] = dict(self.discovery)
        config.update(extra)
        return config


def worker_env() -> dict[str, str]:
    """Environment for workers: host scope, no discovery logs, bench importable."""
    env = dict(os.environ)
    env["COTE_BROADCAST_ADDRESS"] = HOST_SCOPE
    env["COTE_LOG"] = "false"
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    env.pop("COTE_REQUEST_TIMEOUT", None)
    return env


class Proc:
    """One running worker process."""

    def __init__(self, impl: Impl, role: str, label: str) -> None:
        self.impl = impl
        self.role = role
        self.label = label
        self.process: asyncio.subprocess.Process | None = None
        self.events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.started_at = 0.0
        self.stderr_tail: list[str] = []
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def pid(self) -> int:
        """The worker's process id."""
        assert self.process is not None
        return self.process.pid

    async def start(self, config: dict[str, Any]) -> None:
        """Spawn the worker (it is not ready yet: see :meth:`ready`)."""
        env = worker_env()
        if self.impl.is_node:
            # Node cote broadcasts to 255.255.255.255 inside the private namespace.
            env.pop("COTE_BROADCAST_ADDRESS", None)
        self.started_at = time.perf_counter()
        self.process = await asyncio.create_subprocess_exec(
            *self.impl.command(self.role, config),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
            cwd=str(ROOT),
            limit=1 << 26,
        )
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._read_stdout()), loop.create_task(self._read_stderr())]

    async def _read_stdout(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        while True:
            line = await self.process.stdout.readline()
            if not line:
                break
            try:
                event = json.loads(line)
            except ValueError:
                continue
            event["_at"] = time.perf_counter()
            await self.events.put(event)
        await self.events.put({"event": "eof", "_at": time.perf_counter()})

    async def _read_stderr(self) -> None:
        assert self.process is not None and self.process.stderr is not None
        while True:
            line = await self.process.stderr.readline()
            if not line:
                break
            self.stderr_tail = [*self.stderr_tail[-19:], line.decode(errors="replace").rstrip()]

    async def expect(self, event: str, timeout: float) -> dict[str, Any]:
        """Wait for the next event named ``event``, skipping others.

        Raises:
            BenchError: On an ``error`` event, end of output, or timeout.
        """
        try:
            async with asyncio.timeout(timeout):
                while True:
                    got = await self.events.get()
                    name = got.get("event")
                    if name == event:
                        return got
                    if name == "error":
                        raise BenchError(f"{self.label}: {got.get('message')}")
                    if name == "eof":
                        raise BenchError(
                            f"{self.label} exited before {event!r}: "
                            + " | ".join(self.stderr_tail[-5:])
                        )
        except TimeoutError:
            raise BenchError(f"{self.label}: no {event!r} within {timeout:.1f}s") from None

    async def ready(self, timeout: float = 15.0) -> dict[str, Any]:
        """Wait until the component is up."""
        return await self.expect("ready", timeout)

    def send(self, cmd: dict[str, Any]) -> None:
        """Write one command line to the worker."""
        assert self.process is not None and self.process.stdin is not None
        self.process.stdin.write((json.dumps(cmd) + "\n").encode())

    def kill(self) -> None:
        """SIGKILL the worker at once."""
        if self.process is not None and self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGKILL)

    async def stop(self, timeout: float = 3.0) -> None:
        """Ask the worker to exit; kill it if it does not within ``timeout``."""
        if self.process is None:
            return
        if self.process.returncode is None:
            with contextlib.suppress(Exception):
                self.send({"cmd": "exit"})
                assert self.process.stdin is not None
                self.process.stdin.close()
            try:
                async with asyncio.timeout(timeout):
                    await self.process.wait()
            except TimeoutError:
                self.kill()
                await self.process.wait()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


class Group:
    """Processes started together and always stopped together."""

    def __init__(self) -> None:
        self.procs: list[Proc] = []

    async def spawn(
        self, impl: Impl, role: str, config: dict[str, Any], label: str | None = None
    ) -> Proc:
        """Start one more worker in this group."""
        proc = Proc(impl, role, label or f"{impl.name} {role}")
        self.procs.append(proc)
        await proc.start(config)
        return proc

    async def __aenter__(self) -> Group:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.gather(*(p.stop() for p in self.procs), return_exceptions=True)
