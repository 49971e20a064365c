"""A real redis-server for the tests that need one, on a free loopback port."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator

import pytest

from tests.helpers import MS, free_port

REDIS = shutil.which("redis-server")


class RedisServer:
    """One redis-server process (no persistence) on a fixed loopback port.

    It can be stopped and started again on the same port, as a restart in
    production would.
    """

    def __init__(self, port: int | None = None) -> None:
        if REDIS is None:
            pytest.skip("redis-server is not installed")
        self.port = port or free_port()
        self.url = f"redis://127.0.0.1:{self.port}"
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 10_000 * MS) -> None:
        """Start it and wait until it accepts connections."""
        assert REDIS is not None
        proc = self._proc = subprocess.Popen(
            [REDIS, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + timeout
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=100 * MS):
                    return
            except OSError:
                if proc.poll() is not None:
                    pytest.fail(f"redis-server exited with {proc.returncode}")
                if time.monotonic() > deadline:
                    pytest.fail(f"redis-server did not listen within {timeout} s")
                time.sleep(10 * MS)

    def stop(self) -> None:
        """Stop it (SIGTERM, then wait)."""
        if self._proc is not None:
            self._proc.terminate()
            self._proc.wait(timeout=5_000 * MS)
            self._proc = None


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    """A started redis-server that the test may stop and start again."""
    server = RedisServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The URL of a redis-server started for one test."""
    return redis_server.url
