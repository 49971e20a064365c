"""Headless Chromium driven over the Chrome DevTools Protocol, for browser tests.

Debian's ``chromium`` (``/usr/bin/chromium``, installed by
``scripts/system-deps.sh``) runs with ``--headless=new --no-sandbox
--disable-gpu`` (the tests run as root), a temporary user-data-dir, no
background networking, ``TMPDIR`` in its own temporary directory, and
``--remote-debugging-port=0`` on loopback. It
writes the port it picked to ``DevToolsActivePort`` in its user-data-dir;
:class:`Browser` reads it, asks ``/json/list`` for the page target and
speaks CDP over aiohttp's WebSocket client: ``Page.navigate`` and
``Runtime.evaluate``. Every wait is bounded; the browser's whole process
group is killed and its directory removed on the way out.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import shutil
import signal
import tempfile
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import aiohttp

from tests.helpers import MS


def chromium_path() -> str | None:
    """The chromium binary, or ``None`` when it is not installed."""
    for candidate in (shutil.which("chromium"), "/usr/bin/chromium"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


#: Flags for every run: headless, as root, and quiet on the network.
FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--mute-audio",
)


class Browser:
    """One headless Chromium with one page, driven over CDP.

    Args:
        window: Window size, ``(width, height)``.
        start_timeout: Seconds to wait for the DevTools endpoint.
    """

    def __init__(self, window: tuple[int, int] = (1280, 800), start_timeout: float = 0) -> None:
        self.window = window
        self.start_timeout = start_timeout or 30_000 * MS
        self._dir = ""
        self._proc: asyncio.subprocess.Process | None = None
        self._session: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._reader: asyncio.Task[None] | None = None
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._events: dict[str, asyncio.Event] = {}

    async def __aenter__(self) -> Self:
        try:
            await self._start()
        except BaseException:
            await self.close()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def _start(self) -> None:
        binary = chromium_path()
        if binary is None:
            raise RuntimeError("chromium is not installed")
        self._dir = tempfile.mkdtemp(prefix="coterie-chromium-")
        log = os.open(Path(self._dir) / "chromium.log", os.O_WRONLY | os.O_CREAT, 0o600)
        width, height = self.window
        self._proc = await asyncio.create_subprocess_exec(
            binary,
            *FLAGS,
            f"--user-data-dir={Path(self._dir) / 'profile'}",
            "--remote-debugging-address=127.0.0.1",
            "--remote-debugging-port=0",
            f"--window-size={width},{height}",
            "about:blank",
            stdin=asyncio.subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            # Its own temporary files (org.chromium.Chromium.* folders, which a
            # killed chromium leaves behind) go in its directory, removed below.
            env={**os.environ, "TMPDIR": self._dir},
            start_new_session=True,  # its own process group, killed as one
        )
        os.close(log)
        port = await self._devtools_port()
        self._session = aiohttp.ClientSession()
        async with asyncio.timeout(self.start_timeout):
            while True:
                async with self._session.get(f"http://127.0.0.1:{port}/json/list") as resp:
                    targets = await resp.json(content_type=None)
                pages = [t for t in targets if t.get("type") == "page"]
                if pages:
                    break
                await asyncio.sleep(50 * MS)
        self._ws = await self._session.ws_connect(pages[0]["webSocketDebuggerUrl"], max_msg_size=0)
        self._reader = asyncio.create_task(self._read())
        await self.send("Page.enable")
        await self.send("Runtime.enable")

    async def _devtools_port(self) -> int:
        active = Path(self._dir) / "profile" / "DevToolsActivePort"
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.start_timeout
        while loop.time() < deadline:
            assert self._proc is not None
            if self._proc.returncode is not None:
                raise RuntimeError(f"chromium exited with {self._proc.returncode}: {self.log()}")
            with contextlib.suppress(FileNotFoundError, ValueError, IndexError):
                return int(active.read_text().split()[0])
            await asyncio.sleep(50 * MS)
        raise TimeoutError(f"no DevTools port in {self.start_timeout} s: {self.log()}")

    def log(self, tail: int = 2000) -> str:
        """The end of chromium's own output, for failure messages."""
        try:
            return (Path(self._dir) / "chromium.log").read_text(errors="replace")[-tail:]
        except OSError:
            return ""

    async def _read(self) -> None:
        assert self._ws is not None
        async for message in self._ws:
            if message.type != aiohttp.WSMsgType.TEXT:
                break
            data = json.loads(message.data)
            future = self._pending.pop(data.get("id", -1), None)
            if future is not None and not future.done():
                future.set_result(data)
            elif "method" in data:
                self._events.setdefault(data["method"], asyncio.Event()).set()
        for future in self._pending.values():
            if not future.done():
                future.set_exception(ConnectionError("the DevTools connection closed"))

    async def send(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """Send one CDP command and return its result (bounded by 10 s).

        Raises:
            RuntimeError: When chromium answers with an error.
        """
        assert self._ws is not None
        message_id = next(self._ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[message_id] = future
        await self._ws.send_str(
            json.dumps({"id": message_id, "method": method, "params": params or {}})
        )
        async with asyncio.timeout(10_000 * MS):
            answer = await future
        if "error" in answer:
            raise RuntimeError(f"{method}: {answer['error']}")
        result: dict[str, Any] = answer.get("result", {})
        return result

    async def navigate(self, url: str, timeout: float = 10_000 * MS) -> None:
        """Load ``url`` and wait for its load event."""
        loaded = self._events.setdefault("Page.loadEventFired", asyncio.Event())
        loaded.clear()
        result = await self.send("Page.navigate", {"url": url})
        if result.get("errorText"):
            raise RuntimeError(f"navigating to {url}: {result['errorText']}")
        async with asyncio.timeout(timeout):
            await loaded.wait()

    async def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (JSON-serialisable).

        Raises:
            RuntimeError: When the expression throws.
        """
        result = await self.send(
            "Runtime.evaluate", {"expression": expression, "returnByValue": True}
        )
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression!r} threw: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def wait_for(
        self, expression: str, timeout: float = 5_000 * MS, *, what: str = ""
    ) -> Any:
        """Poll ``expression`` every ``20 * MS`` until it is truthy; return it.

        Raises:
            AssertionError: When it is still falsy after ``timeout`` seconds,
                with its last value.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            value = await self.evaluate(expression)
            if value:
                return value
            if loop.time() >= deadline:
                raise AssertionError(
                    f"not true within {timeout:.3f} s: {what or expression} (last: {value!r})"
                )
            await asyncio.sleep(20 * MS)

    async def close(self) -> None:
        """Close the connection, kill chromium's process group, remove its files."""
        if self._ws is not None:
            with contextlib.suppress(Exception):
                await self._ws.close()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(BaseException):
                await self._reader
        if self._session is not None:
            await self._session.close()
        if self._proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._proc.pid, signal.SIGKILL)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(10):
                    await self._proc.wait()
        if self._dir:
            shutil.rmtree(self._dir, ignore_errors=True)
