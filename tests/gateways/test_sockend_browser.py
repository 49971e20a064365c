"""The Sockend from a real browser: headless Chromium runs socket.io-client against it.

cote's Sockend exists so that browser code can call services. Here the
payment example's validation service (its own ``validation_responder``) and a
Python publisher run in the test process with a :class:`Sockend` in front of
them. One aiohttp app serves the socket.io server, the test page
(``sockend_browser.html``) and the socket.io browser client, pinned in
``interop/package.json`` and read from ``interop/node_modules`` (no CDN).

Chromium is driven through the Chrome DevTools Protocol: it is started with
``--remote-debugging-port=0``, the port is read from ``DevToolsActivePort``
in its profile directory, and the test talks to the page's target over
aiohttp's websocket client, reading results with ``Runtime.evaluate``
(``awaitPromise``, ``returnByValue``). Every wait is bounded, in the page and
here; Chromium's process group is killed in a ``finally``.

Skips only when Chromium (``/usr/bin/chromium``, Debian's package) or
``interop/node_modules`` is missing; ``make setup`` installs both.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("socketio")

import aiohttp
from aiohttp import web

from coterie import Publisher
from coterie.gateways.sockend import Sockend, socketio_app
from examples.payment.apps import VERDICT_REQUEST as VERDICT
from examples.payment.apps import validation_responder
from tests.helpers import MS, DiscoveryFactory, ms

REPO = Path(__file__).resolve().parents[2]
PAGE = Path(__file__).with_name("sockend_browser.html")
CLIENT_JS = REPO / "interop" / "node_modules" / "socket.io-client" / "dist" / "socket.io.min.js"
CHROMIUM = shutil.which("chromium")

pytestmark = [
    pytest.mark.skipif(
        CHROMIUM is None,
        reason="chromium is not installed (Debian's package; make setup installs it)",
    ),
    pytest.mark.skipif(
        not CLIENT_JS.is_file(),
        reason=f"{CLIENT_JS.relative_to(REPO)} is missing: run npm ci --prefix interop",
    ),
]

#: Bound on Chromium's start, up to its DevTools endpoint, in seconds.
BROWSER_START = 30_000 * MS
#: Bound on each answer or event awaited in the page, in milliseconds.
PAGE_WAIT_MS = ms(5_000)

VALID_CARD = "4111111111111111"
INVALID_CARD = "4111111111111112"  # one digit off: fails the Luhn check


# -- the Chrome DevTools Protocol ------------------------------------------------


class DevTools:
    """A minimal CDP client for one page target: one command in flight at a time."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.last_id = 0
        #: Console messages and uncaught exceptions of the page, for failure messages.
        self.console: list[str] = []

    async def call(
        self, method: str, timeout: float = 10_000 * MS, **params: Any
    ) -> dict[str, Any]:
        self.last_id += 1
        sent = self.last_id
        async with asyncio.timeout(timeout):
            await self.ws.send_str(json.dumps({"id": sent, "method": method, "params": params}))
            while True:
                msg = await self.ws.receive()
                if msg.type is not aiohttp.WSMsgType.TEXT:
                    raise ConnectionError(f"DevTools connection ended during {method}: {msg!r}")
                data = json.loads(msg.data)
                if data.get("id") == sent:
                    if "error" in data:
                        raise RuntimeError(f"{method} failed: {data['error']}")
                    return dict(data["result"])
                self._note(data)

    def _note(self, event: dict[str, Any]) -> None:
        params = event.get("params", {})
        if event.get("method") == "Runtime.consoleAPICalled":
            texts = [str(a.get("value", a.get("description", ""))) for a in params.get("args", [])]
            self.console.append(f"console.{params.get('type')}: {' '.join(texts)}")
        elif event.get("method") == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            text = details.get("exception", {}).get("description") or details.get("text")
            self.console.append(f"uncaught: {text}")

    async def evaluate(self, expression: str, timeout: float = 10_000 * MS) -> Any:
        """The value of a JavaScript expression in the page, awaited if it is a promise."""
        result = await self.call(
            "Runtime.evaluate",
            timeout=timeout,
            expression=expression,
            awaitPromise=True,
            returnByValue=True,
        )
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            text = details.get("exception", {}).get("description") or details.get("text")
            raise AssertionError(f"{expression!r} threw {text}; page console: {self.console}")
        return result["result"].get("value")


async def _devtools_port(profile: Path, proc: asyncio.subprocess.Process) -> int:
    """Chromium's DevTools port, from the file it writes once it listens."""
    active = profile / "DevToolsActivePort"
    async with asyncio.timeout(BROWSER_START):
        while True:
            if proc.returncode is not None:
                raise RuntimeError(f"chromium exited with {proc.returncode} before listening")
            with contextlib.suppress(OSError, ValueError):
                lines = active.read_text().splitlines()
                if len(lines) >= 2:  # the port, then the browser's path: written in full
                    return int(lines[0])
            await asyncio.sleep(50 * MS)


async def _stop(proc: asyncio.subprocess.Process) -> None:
    """End Chromium: SIGTERM lets it end and reap its helpers; then SIGKILL what is left.

    Chromium runs in a process group of its own (``start_new_session``), so
    the SIGKILL reaches any helper process that outlived it.
    """
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(proc.wait(), 5_000 * MS)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(proc.wait(), 5_000 * MS)


@asynccontextmanager
async def browser(tmp_path: Path) -> AsyncIterator[DevTools]:
    """Headless Chromium on about:blank; yields a DevTools client for its page."""
    assert CHROMIUM is not None
    profile = tmp_path / "chromium-profile"
    profile.mkdir()
    log_path = tmp_path / "chromium.log"
    log_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        proc = await asyncio.create_subprocess_exec(
            CHROMIUM,
            "--headless=new",
            "--no-sandbox",  # the tests run as root
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-extensions",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            "--remote-debugging-address=127.0.0.1",
            "--remote-debugging-port=0",
            "about:blank",
            stdin=asyncio.subprocess.DEVNULL,
            stdout=log_fd,
            stderr=log_fd,
            start_new_session=True,  # its own process group, killed as one
        )
    finally:
        os.close(log_fd)
    try:
        try:
            port = await _devtools_port(profile, proc)
        except (TimeoutError, RuntimeError) as exc:
            log_tail = log_path.read_text(errors="replace")[-2000:]
            raise AssertionError(f"chromium did not start: {exc!r}\n{log_tail}") from None
        timeout = aiohttp.ClientTimeout(total=10_000 * MS)
        async with aiohttp.ClientSession(timeout=timeout) as http:
            async with http.get(f"http://127.0.0.1:{port}/json/list") as response:
                targets = await response.json()
            pages = [t for t in targets if t.get("type") == "page"]
            assert pages, f"chromium shows no page target: {targets!r}"
            page = pages[0]
            async with http.ws_connect(page["webSocketDebuggerUrl"], max_msg_size=0) as ws:
                devtools = DevTools(ws)
                await devtools.call("Runtime.enable")
                yield devtools
    finally:
        await _stop(proc)


async def open_page(devtools: DevTools, url: str) -> None:
    """Navigate to the test page and wait until its socket.io client is connected."""
    await devtools.call("Page.navigate", url=url)
    async with asyncio.timeout(10_000 * MS):
        while True:
            # Until the navigation commits, evaluations may run in about:blank
            # or lose their context; poll.
            with contextlib.suppress(AssertionError, RuntimeError):
                ready = await devtools.evaluate(
                    "document.readyState === 'complete' && 'sockendTest' in window"
                )
                if ready is True:
                    break
            await asyncio.sleep(50 * MS)
    sid = await devtools.evaluate(
        f"sockendTest.within(sockendTest.connected, {PAGE_WAIT_MS}, 'connection')",
        timeout=PAGE_WAIT_MS / 1000 + 5_000 * MS,
    )
    assert isinstance(sid, str) and sid, f"not connected: {sid!r}; console: {devtools.console}"


async def page_request(devtools: DevTools, request_type: str, data: dict[str, Any]) -> Any:
    """``request(type, data)`` in the page: ``{answered}``, ``{refused}`` or ``{noAnswer}``."""
    expression = (
        f"sockendTest.request({json.dumps(request_type)}, {json.dumps(data)}, {PAGE_WAIT_MS})"
    )
    return await devtools.evaluate(expression, timeout=PAGE_WAIT_MS / 1000 + 5_000 * MS)


# -- the app the browser loads ------------------------------------------------------


@asynccontextmanager
async def site(sockend: Sockend) -> AsyncIterator[str]:
    """The socket.io server, the page and the client script on one origin; yields its URL."""
    app = socketio_app(sockend.io)

    async def page(request: web.Request) -> web.FileResponse:
        return web.FileResponse(PAGE)

    async def client_js(request: web.Request) -> web.FileResponse:
        return web.FileResponse(CLIENT_JS)

    app.router.add_get("/", page)
    app.router.add_get("/socket.io.min.js", client_js)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}/"
    finally:
        await runner.cleanup()


# -- the test --------------------------------------------------------------------


async def test_browser_calls_validation_and_receives_publishes(
    disc: DiscoveryFactory, tmp_path: Path
) -> None:
    validation = validation_responder("browser-test validator", discovery=disc())
    payments = Publisher(
        "payment service", host="127.0.0.1", broadcasts=["payment"], discovery=disc()
    )
    sockend = Sockend(name="browser gateway", discovery=disc())
    async with validation, payments, sockend, site(sockend) as url, browser(tmp_path) as devtools:
        await sockend.wait_exposed(["validate"], timeout=5_000 * MS)
        await sockend.wait_ready(None, timeout=5_000 * MS)
        await payments.wait_subscribers(1, timeout=5_000 * MS)
        assert sockend.exposed() == ["validate"]
        assert sockend.relays() == ["payment"]

        await open_page(devtools, url)

        # 1. A valid card is answered by the validation service, through the Sockend.
        # ("answer": "verdict" asks for the whole verdict; without it the validator
        # answers as the seed's did: true, or the reason as a bare error.)
        valid = await page_request(devtools, "validate", {"cardno": VALID_CARD, **VERDICT})
        assert valid == {
            "answered": {"valid": True, "reason": None, "by": "browser-test validator"}
        }, f"page console: {devtools.console}"
        invalid = await page_request(devtools, "validate", {"cardno": INVALID_CARD, **VERDICT})
        assert invalid == {
            "answered": {
                "valid": False,
                "reason": "failed the Luhn check",
                "by": "browser-test validator",
            }
        }, f"page console: {devtools.console}"
        assert sockend.forwarded == 2 and validation.handled == 2

        # 2. A type no responder exposes is refused by the gateway at once, not forwarded.
        refused = await page_request(devtools, "charge", {"cardno": VALID_CARD, "amount": 10})
        assert refused == {
            "refused": {
                "name": "SockendError",
                "code": "no_handler",
                "message": "no responder serves 'charge' on /",
            }
        }, f"page console: {devtools.console}"
        assert sockend.refused == 1
        assert sockend.forwarded == 2 and validation.handled == 2

        # 3. A publish from a Python publisher reaches the page.
        await payments.publish("payment", {"cardno": "************1111", "amount": 10})
        event = await devtools.evaluate(
            f"sockendTest.within(sockendTest.published, {PAGE_WAIT_MS}, 'payment event')",
            timeout=PAGE_WAIT_MS / 1000 + 5_000 * MS,
        )
        assert event == {"cardno": "************1111", "amount": 10}, (
            f"page console: {devtools.console}"
        )
        assert sockend.relayed == 1
