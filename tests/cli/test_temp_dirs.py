"""`coterie nginx` removes the temporary prefix it made, however it returns."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import pytest

from tests.e2e.support import NGINX, free_port, needs_nginx
from tests.helpers import MS, wait_for


async def _coterie_nginx(tmp: Path, *argv: str) -> asyncio.subprocess.Process:
    env = {**os.environ, "TMPDIR": str(tmp), "COTE_BROADCAST_ADDRESS": "127.255.255.255"}
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "coterie", "nginx", "--service", "s", *argv,
        env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip


def _prefixes(tmp: Path) -> list[Path]:
    return sorted(tmp.glob("coterie-nginx-*"))


async def test_a_missing_nginx_leaves_no_prefix(tmp_path: Path) -> None:
    proc = await _coterie_nginx(tmp_path, "--nginx", "/no/such/nginx")
    assert proc.stderr is not None
    err = await asyncio.wait_for(proc.stderr.read(), 30)
    assert await proc.wait() == 1
    assert b"nginx binary /no/such/nginx does not exist" in err
    assert _prefixes(tmp_path) == []


@needs_nginx
@pytest.mark.nginx
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
async def test_a_stopped_nginx_leaves_no_prefix(tmp_path: Path, sig: signal.Signals) -> None:
    assert NGINX is not None
    proc = await _coterie_nginx(tmp_path, "--nginx", NGINX, "--listen", f"127.0.0.1:{free_port()}")
    try:
        # Running: nginx wrote its pid file into the prefix.
        await wait_for(
            lambda: any((p / "nginx.pid").exists() for p in _prefixes(tmp_path)),
            10_000 * MS,
            what="nginx running in a temporary prefix",
        )
        proc.send_signal(sig)
        assert await asyncio.wait_for(proc.wait(), 20) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert _prefixes(tmp_path) == []
