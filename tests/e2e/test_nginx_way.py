"""The nginx way end to end: real nginx, ``coterie nginx``, ``coterie announce``, real HTTP."""

from __future__ import annotations

import asyncio
import socket
import time
from collections import Counter
from pathlib import Path

import aiohttp
import pytest

from tests.e2e.support import (
    EXAMPLES,
    GOOD,
    PY,
    Child,
    Children,
    children,
    discovery_args,
    free_port,
    needs_nginx,
    pay,
    wait_until_validated,
)

pytestmark = [needs_nginx, pytest.mark.nginx]


async def _announced_validator(procs: Children, dport: int, name: str) -> Child:
    port = free_port()
    return await procs.start(
        name,
        PY,
        "-m",
        "coterie",
        "announce",
        "--name",
        "validation-service",
        "--port",
        str(port),
        "--check-interval",
        "0.1",
        *discovery_args(dport),
        "--",
        PY,
        str(EXAMPLES / "validation_service.py"),
        "--http",
        str(port),
        "--id",
        name,
    )


async def _wait_for(predicate, what: str, procs: Children, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not await predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}\n{procs.logs()}")
        await asyncio.sleep(0.05)


def _upstream_servers(prefix: Path) -> list[str]:
    conf = prefix / "nginx.conf"
    if not conf.exists():
        return []
    return [
        line.strip()
        for line in conf.read_text().splitlines()
        if line.strip().startswith("server ") and ":" in line
    ]


async def test_nginx_way_502_then_round_robin_then_reload_on_change(
    tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    dport = free_port(socket.SOCK_DGRAM)
    nginx_port, pay_port = free_port(), free_port()
    prefix = tmp_path / "nginx"
    async with children(tmp_path) as procs:
        await procs.start(
            "nginx",
            PY,
            "-m",
            "coterie",
            "nginx",
            "--service",
            "validation-service",
            "--listen",
            f"127.0.0.1:{nginx_port}",
            "--prefix",
            str(prefix),
            "--proxy-timeout",
            "3",
            *discovery_args(dport),
        )
        await procs.start(
            "payment",
            PY,
            str(EXAMPLES / "payment_service.py"),
            "--via",
            "nginx",
            "--port",
            str(pay_port),
            "--validation-url",
            f"http://127.0.0.1:{nginx_port}",
            "--timeout",
            "5",
        )

        # No validator: nginx has only the placeholder and answers 502, which the
        # payment service reports as a validation failure (not a 500).
        async def placeholder_502() -> bool:
            try:
                answer = await pay(session, pay_port, GOOD, timeout=2)
            except (aiohttp.ClientError, TimeoutError):
                return False
            return answer.text == f"{GOOD} validation failed: 502 Bad Gateway from nginx"

        await _wait_for(placeholder_502, "nginx's 502", procs)
        assert _upstream_servers(prefix) == ["server 127.0.0.1:1 down;"]
        answer = await pay(session, pay_port, GOOD)
        assert answer.status == 503

        # Two announced validators: nginx is reloaded and spreads over both.
        v1 = await _announced_validator(procs, dport, "h1")
        await _announced_validator(procs, dport, "h2")
        await wait_until_validated(session, pay_port, GOOD, distinct=2, procs=procs)
        assert len(_upstream_servers(prefix)) == 2
        answers = [await pay(session, pay_port, GOOD) for _ in range(6)]
        assert {a.text for a in answers} == {f"{GOOD} validated"}
        assert Counter(a.by for a in answers) == {"h1": 3, "h2": 3}

        # Bad card numbers through nginx: a clear answer, never a 500.
        for card, reason in [
            ("12x4", "not a card number: 'x' is not a digit"),
            ("a%2F..%2Fb", "not a card number: 'a' is not a digit"),
            ("", "empty card number"),
            ("4" * 25, "too long (25 digits, at most 19)"),
            ("4111111111111112", "failed the Luhn check"),
        ]:
            answer = await pay(session, pay_port, card)
            assert (answer.status, answer.text.split(" validation failed: ")[1]) == (422, reason)

        # One validator gone: its announcement is withdrawn, nginx reloaded with one.
        async def generation() -> str:
            async with session.get(f"http://127.0.0.1:{nginx_port}/validate/{GOOD}") as r:
                return r.headers.get("X-Coterie-Generation", "")

        before = await generation()
        await v1.stop()

        async def one_server() -> bool:
            return len(_upstream_servers(prefix)) == 1 and await generation() != before

        await _wait_for(one_server, "the reload without h1", procs)
        answers = [await pay(session, pay_port, GOOD) for _ in range(4)]
        assert [a.by for a in answers] == ["h2"] * 4
        assert "announce: 'validation-service'" in v1.output()
        assert "withdrawn" in v1.output()
