"""Run coterie components in child processes, for tests that kill or restart them.

Each child prints one JSON line per event on stdout (``{"event": "ready"}``
once it serves). Everything it does is host scope: the parent's environment,
which the test session sets to broadcast on 127.255.255.255, is passed on.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from typing import Any

from tests.helpers import MS

RESPONDER = r"""
import asyncio, json, os, sys
from coterie import Responder, DiscoveryOptions
cfg = json.loads(sys.argv[1])
async def main():
    disc = DiscoveryOptions(**cfg.get("discovery", {}))
    async with Responder(name=cfg["name"], namespace=cfg.get("namespace"), discovery=disc) as r:
        delay = cfg.get("delay", 0)
        # "serial": one request at a time, like a busy single-threaded worker.
        gate = asyncio.Semaphore(1 if cfg.get("serial") else 1_000_000)
        @r.on(cfg.get("type", "work"))
        async def work(req):
            async with gate:
                if delay:
                    await asyncio.sleep(delay)
            return {"n": req.get("n"), "by": cfg["name"], "pid": os.getpid()}
        print(json.dumps({"event": "ready", "port": r.port, "id": r.id}), flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
asyncio.run(main())
"""

SUBSCRIBER = r"""
import asyncio, json, sys
from coterie import Subscriber, DiscoveryOptions
cfg = json.loads(sys.argv[1])
async def main():
    disc = DiscoveryOptions(**cfg.get("discovery", {}))
    # Each event's data on its own line of cfg["log"], written at once: what
    # was read before a kill -9 is on disk.
    with open(cfg["log"], "w", buffering=1) as log:
        async with Subscriber(name=cfg["name"], group=cfg.get("group"), discovery=disc) as s:
            s.on(cfg.get("event", "tick"), lambda data: log.write(f"{json.dumps(data)}\n"))
            print(json.dumps({"event": "ready", "id": s.id}), flush=True)
            await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
asyncio.run(main())
"""


def rss_mib(pid: int) -> float:
    """Resident memory of process ``pid`` in MiB, from /proc."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for process {pid}")


class ChildComponent:
    """A coterie component in its own process."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.ready: dict[str, Any] = {}

    @classmethod
    async def responder(
        cls, name: str, *, timeout: float = 20_000 * MS, **cfg: Any
    ) -> ChildComponent:
        """Start a responder child and wait until it serves."""
        return await cls._start(RESPONDER, name, timeout, cfg)

    @classmethod
    async def subscriber(
        cls, name: str, log: str, *, timeout: float = 20_000 * MS, **cfg: Any
    ) -> ChildComponent:
        """Start a subscriber child that writes each event's data as a line of ``log``."""
        cfg["log"] = log
        return await cls._start(SUBSCRIBER, name, timeout, cfg)

    @classmethod
    async def _start(
        cls, script: str, name: str, timeout: float, cfg: dict[str, Any]
    ) -> ChildComponent:
        cfg["name"] = name
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            script,
            json.dumps(cfg),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            env=dict(os.environ),
        )
        child = cls(proc)
        assert proc.stdout is not None
        async with asyncio.timeout(timeout):
            line = await proc.stdout.readline()
        if not line:
            raise RuntimeError(f"child {name} exited with {await proc.wait()}")
        child.ready = json.loads(line)
        return child

    def kill(self) -> None:
        """kill -9."""
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGKILL)

    async def stop(self, timeout: float = 10_000 * MS) -> int:
        """Close stdin (graceful stop), or kill if it does not exit in time."""
        if self.proc.returncode is None and self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            async with asyncio.timeout(timeout):
                return await self.proc.wait()
        except TimeoutError:
            self.kill()
            return await self.proc.wait()
