"""Drive ``interop/peer.js``, a real Node cote component, from asyncio tests.

A :class:`NodePeer` runs ``node interop/peer.js <role> '<config>'`` and talks
JSON lines with it: commands go to its stdin, events come from its stdout.
Every wait has a timeout, and a failure shows the peer's stderr.

Node cote broadcasts discovery to 255.255.255.255, so peers only start inside
the private network namespace that ``tests/conftest.py`` makes for the session
(see :func:`require_private_netns`).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from coterie import DiscoveryOptions
from coterie.discovery.options import DEFAULT_PORT
from tests import netns
from tests.helpers import MS, fast_discovery, ms

REPO_ROOT = Path(__file__).resolve().parents[2]
INTEROP_DIR = REPO_ROOT / "interop"
PEER_SCRIPT = INTEROP_DIR / "peer.js"
NODE_MODULES = INTEROP_DIR / "node_modules"

#: Discovery options that make Node cote find peers within a fraction of a second.
FAST_DISCOVERY: dict[str, int] = {
    "helloInterval": ms(200),
    "checkInterval": ms(400),
    "nodeTimeout": ms(500),
    "masterTimeout": ms(600),
}


def python_discovery(**overrides: Any) -> DiscoveryOptions:
    """Options for a Python component that meets the Node peers.

    :data:`FAST_DISCOVERY`'s timings on cote's default port, which the Node
    peers use; the session's private network namespace keeps it apart from
    the host (and these tests skip without one).
    """
    timings = {
        "hello_interval": FAST_DISCOVERY["helloInterval"],
        "check_interval": FAST_DISCOVERY["checkInterval"],
        "node_timeout": FAST_DISCOVERY["nodeTimeout"],
        "master_timeout": FAST_DISCOVERY["masterTimeout"],
    }
    return fast_discovery(DEFAULT_PORT, **{**timings, **overrides})


Event = dict[str, Any]


def require_private_netns() -> None:
    """Skip the calling test unless the session runs in a private network namespace."""
    if netns.reason_unavailable is not None:
        pytest.skip(f"Node cote needs a private network namespace: {netns.reason_unavailable}")


def node_unavailable_reason() -> str | None:
    """Say why Node peers cannot run here, or ``None`` when they can."""
    if shutil.which("node") is None:
        return "node is not installed"
    if not (NODE_MODULES / "cote" / "package.json").is_file():
        return f"{NODE_MODULES} is missing: run `npm ci --prefix interop`"
    return None


def require_node() -> None:
    """Skip the calling test unless node and interop/node_modules are present."""
    reason = node_unavailable_reason()
    if reason is not None:
        pytest.skip(reason)


def _peer_environment(extra: Mapping[str, str] | None) -> dict[str, str]:
    # COTE_* variables of the test process (COTE_ENV set by a test for its
    # Python side, COTE_BROADCAST_ADDRESS, ...) do not leak into Node peers;
    # pass them in ``env`` to give them on purpose.
    env = {k: v for k, v in os.environ.items() if not k.startswith("COTE_")}
    env.update(extra or {})
    return env


class NodePeer:
    """One running ``interop/peer.js`` process."""

    def __init__(self, role: str, config: Mapping[str, Any], proc: asyncio.subprocess.Process):
        self.role = role
        self.config = dict(config)
        self.proc = proc
        self.events: list[Event] = []
        self.stderr_lines: list[str] = []
        self.ready: Event | None = None
        self._changed = asyncio.Condition()
        self._eof = False
        self._seq = itertools.count(1_000_000)
        self._stdout_task = asyncio.create_task(self._read_stdout())
        self._stderr_task = asyncio.create_task(self._read_stderr())

    @classmethod
    async def start(
        cls,
        role: str,
        config: Mapping[str, Any] | None = None,
        env: Mapping[str, str] | None = None,
        *,
        ready_timeout: float = 10_000 * MS,
    ) -> NodePeer:
        """Start a peer and wait for its ``ready`` event.

        Args:
            role: ``responder``, ``requester``, ``publisher`` or ``subscriber``.
            config: the JSON config of ``peer.js``; ``discovery`` defaults to
                :data:`FAST_DISCOVERY`.
            env: extra environment variables for the Node process.
            ready_timeout: seconds to wait for ``ready``.
        """
        require_node()
        require_private_netns()
        config = dict(config or {})
        config.setdefault("discovery", dict(FAST_DISCOVERY))
        proc = await asyncio.create_subprocess_exec(
            "node",
            str(PEER_SCRIPT),
            role,
            json.dumps(config),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=str(REPO_ROOT),
            env=_peer_environment(env),
        )
        peer = cls(role, config, proc)
        await peer.wait_ready(ready_timeout)
        return peer

    async def wait_ready(self, timeout: float) -> None:
        """Wait for the ``ready`` event (kept as :attr:`ready`); close the peer without it."""
        try:
            self.ready = await self.wait_for("ready", timeout=timeout)
        except BaseException:
            await self.close()
            raise

    @property
    def pid(self) -> int:
        """The Node process id (what echo replies carry as ``pid``)."""
        return self.proc.pid

    async def _read_stdout(self) -> None:
        assert self.proc.stdout is not None
        try:
            while line := await self.proc.stdout.readline():
                text = line.decode(errors="replace").strip()
                if not text:
                    continue
                try:
                    event = json.loads(text)
                except ValueError:
                    event = {"event": "stdout", "text": text}
                self._received(event)
                async with self._changed:
                    self.events.append(event)
                    self._changed.notify_all()
        finally:
            async with self._changed:
                self._eof = True
                self._changed.notify_all()

    def _received(self, event: Event) -> None:
        """Hook: called with each event from stdout before it is recorded."""

    async def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        while line := await self.proc.stderr.readline():
            self.stderr_lines.append(line.decode(errors="replace").rstrip())

    def describe(self) -> str:
        """A report of the peer for failure messages: config, events and stderr."""
        stderr = "\n".join(self.stderr_lines[-40:]) or "(empty)"
        events = "\n".join(json.dumps(e) for e in self.events[-20:]) or "(none)"
        return (
            f"node peer {self.role} pid={self.proc.pid} rc={self.proc.returncode} "
            f"config={json.dumps(self.config)}\n--- last events ---\n{events}"
            f"\n--- stderr ---\n{stderr}"
        )

    def find(self, name: str, predicate: Callable[[Event], bool] | None = None) -> list[Event]:
        """Events named ``name`` received so far (that satisfy ``predicate``)."""
        return [
            e for e in self.events if e.get("event") == name and (predicate is None or predicate(e))
        ]

    async def wait_for(
        self,
        name: str,
        timeout: float = 10_000 * MS,
        predicate: Callable[[Event], bool] | None = None,
    ) -> Event:
        """Return the first event named ``name`` (matching ``predicate``), past or future.

        Raises:
            AssertionError: on timeout, or when the peer exits first; the
                message carries the peer's events and stderr.
        """

        def match() -> Event | None:
            found = self.find(name, predicate)
            return found[0] if found else None

        try:
            async with asyncio.timeout(timeout), self._changed:
                while (event := match()) is None:
                    if self._eof:
                        report = await self._describe_after_exit()
                        raise AssertionError(f"peer exited before event {name!r}\n{report}")
                    await self._changed.wait()
                return event
        except TimeoutError:
            raise AssertionError(
                f"no event {name!r} within {timeout} s\n{self.describe()}"
            ) from None

    async def wait_for_count(
        self,
        name: str,
        count: int,
        timeout: float = 10_000 * MS,
        predicate: Callable[[Event], bool] | None = None,
    ) -> list[Event]:
        """Wait until ``count`` events named ``name`` (matching ``predicate``) arrived.

        Returns all such events so far (at least ``count``).
        """
        if count <= 0:
            return self.find(name, predicate)
        # Scan each event once: a predicate that counted all events per event made
        # 10,000 events quadratic (over 30 s under coverage).
        found: list[Event] = []
        scanned = 0
        try:
            async with asyncio.timeout(timeout), self._changed:
                while True:
                    fresh, scanned = self.events[scanned:], len(self.events)
                    found += [
                        e
                        for e in fresh
                        if e.get("event") == name and (predicate is None or predicate(e))
                    ]
                    if len(found) >= count:
                        return found
                    if self._eof:
                        report = await self._describe_after_exit()
                        raise AssertionError(f"peer exited before {count} {name!r}\n{report}")
                    await self._changed.wait()
        except TimeoutError:
            raise AssertionError(
                f"{len(found)} of {count} {name!r} events within {timeout} s\n{self.describe()}"
            ) from None

    async def _describe_after_exit(self) -> str:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(2_000 * MS):
                await self._stderr_task
                await self.proc.wait()
        return self.describe()

    async def send_cmd(self, cmd: Mapping[str, Any], timeout: float = 5_000 * MS) -> None:
        """Write one JSON command line to the peer's stdin."""
        assert self.proc.stdin is not None
        if self.proc.returncode is not None:
            raise AssertionError(f"peer already exited\n{self.describe()}")
        self.proc.stdin.write(json.dumps(cmd).encode() + b"\n")
        try:
            async with asyncio.timeout(timeout):
                await self.proc.stdin.drain()
        except (TimeoutError, ConnectionError) as exc:
            raise AssertionError(f"could not write {cmd!r}: {exc!r}\n{self.describe()}") from exc

    async def request(
        self, req: Mapping[str, Any], *, seq: int | None = None, timeout: float = 5_000 * MS
    ) -> Event:
        """Requester only: send ``req`` and return its ``reply`` event.

        cote's own request timeout is set to ``timeout`` (as ``__timeout``),
        and this waits a little longer for the reply line.
        """
        if seq is None:
            seq = next(self._seq)
        cmd = {"cmd": "send", "seq": seq, "req": dict(req), "timeout": round(timeout * 1000)}
        await self.send_cmd(cmd)
        return await self.wait_for("reply", timeout + 2_000 * MS, lambda e: e.get("seq") == seq)

    async def close(self, timeout: float = 5_000 * MS) -> int | None:
        """Ask the peer to exit, kill it past ``timeout``, return its exit code."""
        if self.proc.returncode is None:
            with contextlib.suppress(Exception):
                await self.send_cmd({"cmd": "exit"}, timeout=1_000 * MS)
            with contextlib.suppress(Exception):
                assert self.proc.stdin is not None
                self.proc.stdin.close()
            try:
                async with asyncio.timeout(timeout):
                    await self.proc.wait()
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    self.proc.kill()
                await self.proc.wait()
        for task in (self._stdout_task, self._stderr_task):
            try:
                async with asyncio.timeout(2_000 * MS):
                    await task
            except TimeoutError:
                task.cancel()
        return self.proc.returncode
