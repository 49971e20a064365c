"""Flask and Django views under gunicorn call a Python and a Node responder with coterie.sync.

Each app makes its ``coterie.sync.Requester`` at import, and gunicorn runs
it with ``--preload`` (the master imports the app, then forks) in 2 workers
of 8 threads. A Python responder (on the test's loop) and a real Node cote
responder (``interop/peer.js``) serve; a bounded load client (16 threads of
``http.client`` keep-alive connections on loopback) sends 10,000 requests,
each view asks both responders, and every answer is checked. Node cote
broadcasts, so these tests run only in the tests' private network namespace.
"""

from __future__ import annotations

import asyncio
import dataclasses
import http.client
import json
import os
import signal
import socket
import sys
import threading
from collections import Counter
from pathlib import Path

import pytest

import coterie
from tests.helpers import MS, free_port
from tests.interop.nodepeer import NodePeer, python_discovery, require_node, require_private_netns

pytestmark = pytest.mark.node

ROOT = Path(__file__).resolve().parents[2]
REQUESTS = 10_000
CLIENT_THREADS = 16
CARDS = ("4111111111111111", "4111111111111112", "5500000000000004", "1234567812345678")


def _luhn(cardno: str) -> bool:
    digits = [int(d) for d in reversed(cardno)]
    return (sum(digits[0::2]) + sum(sum(divmod(2 * d, 10)) for d in digits[1::2])) % 10 == 0


def _load(port: int, node_pid: int) -> tuple[int, Counter[int], list[str]]:
    """Send :data:`REQUESTS` from :data:`CLIENT_THREADS` threads.

    Returns:
        The errors, the answers per gunicorn worker, and the first errors' text.
    """
    lock = threading.Lock()
    state = {"next": 0, "errors": 0}
    workers: Counter[int] = Counter()
    errors: list[str] = []

    def client() -> None:
        conn: http.client.HTTPConnection | None = None
        sent = 0
        while True:
            with lock:
                i = state["next"]
                if i >= REQUESTS:
                    break
                state["next"] = i + 1
            cardno = CARDS[i % len(CARDS)]
            try:
                if conn is None or sent % 50 == 0:  # new connections reach both workers
                    if conn is not None:
                        conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
                sent += 1
                conn.request("GET", f"/validate/{cardno}")
                response = conn.getresponse()
                body = response.read()
                assert response.status == 200, (response.status, body[:300])
                answer = json.loads(body)
                assert answer["python"] is _luhn(cardno), answer
                node = answer["node"]
                assert node["cardno"] == cardno and node["pid"] == node_pid, answer
                with lock:
                    workers[answer["worker"]] += 1
            except Exception as exc:
                if conn is not None:
                    conn.close()
                conn = None
                with lock:
                    state["errors"] += 1
                    if len(errors) < 5:
                        errors.append(repr(exc))
        if conn is not None:
            conn.close()

    threads = [threading.Thread(target=client, daemon=True) for _ in range(CLIENT_THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(600)
    return state["errors"], workers, errors


async def _wait_listening(port: int, proc: asyncio.subprocess.Process) -> None:
    async with asyncio.timeout(30_000 * MS):
        while True:
            assert proc.returncode is None, "gunicorn exited before it listened"
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return
            except OSError:
                await asyncio.sleep(50 * MS)


@pytest.mark.timeout(900)
@pytest.mark.parametrize(
    "app", ["tests.sync.apps.flask_app:app", "tests.sync.apps.django_app:application"]
)
async def test_views_under_gunicorn_call_python_and_node(app: str) -> None:
    require_private_netns()
    require_node()
    discovery = python_discovery()
    node = await NodePeer.start("responder", {"name": "node validation", "quiet": True,
                                              "respondsTo": ["validate-node"]})  # fmt: skip
    port = free_port()
    fields = {k: v for k, v in dataclasses.asdict(discovery).items() if v is not None}
    env = {
        **os.environ,
        "COTE_BROADCAST_ADDRESS": "127.255.255.255",
        "COTERIE_TEST_DISCOVERY": json.dumps(fields),
    }
    responder = coterie.Responder("python validation", discovery=discovery)
    responder.on("validate-py", lambda req: _luhn(req["cardno"]))
    gunicorn: asyncio.subprocess.Process | None = None
    try:
        await responder.start()
        gunicorn = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "gunicorn", "--preload", "--workers", "2", "--threads", "8",
            "--bind", f"127.0.0.1:{port}", "--graceful-timeout", "5", "--log-level", "warning",
            app, cwd=ROOT, env=env, stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        await _wait_listening(port, gunicorn)
        errors, workers, first = await asyncio.to_thread(_load, port, node.pid)
        assert errors == 0, first
        assert sum(workers.values()) == REQUESTS
        assert len(workers) == 2, workers  # both forked workers called the mesh
        assert responder.stats().handled >= REQUESTS
        # Workers exit promptly on SIGTERM: their requesters never hold them up.
        gunicorn.send_signal(signal.SIGTERM)
        async with asyncio.timeout(10_000 * MS):
            await gunicorn.wait()
        assert gunicorn.returncode == 0
    finally:
        if gunicorn is not None and gunicorn.returncode is None:
            gunicorn.kill()
            await gunicorn.wait()
        await responder.close()
        await node.close()
