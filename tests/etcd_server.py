"""A real etcd server for the tests that need one, on free loopback ports.

Debian's ``etcd-server`` package provides it (``scripts/system-deps.sh``
installs it); tests skip with a reason only where the binary is absent.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import MS, free_port

ETCD = shutil.which("etcd")


class EtcdServer:
    """One single-member etcd with its data in a temporary directory.

    It can be stopped and started again on the same ports, with its data
    (as a restart in production) or without it (``wipe=True``, a member
    replaced by an empty one).

    Args:
        host: The address to listen on (loopback, or a bed host's address).
        netns: Run it in this network namespace (``ip netns exec``).
    """

    def __init__(self, host: str = "127.0.0.1", netns: str | None = None) -> None:
        if ETCD is None:
            pytest.skip("etcd is not installed (Debian: etcd-server)")
        self.host = host
        self.netns = netns
        self.port = free_port()
        self.peer_port = free_port()
        self.url = f"http://{host}:{self.port}"
        self._dir = tempfile.TemporaryDirectory(prefix="coterie-etcd-")
        self.data_dir = Path(self._dir.name) / "data"
        self._proc: subprocess.Popen[bytes] | None = None
        self.log = Path(self._dir.name) / "etcd.log"

    def start(self, timeout: float = 20_000 * MS) -> None:
        """Start it and wait until it serves reads."""
        assert ETCD is not None
        peer = f"http://{self.host}:{self.peer_port}"
        argv = [
            ETCD,
            "--name", "coterie-test",
            "--data-dir", str(self.data_dir),
            "--listen-client-urls", self.url,
            "--advertise-client-urls", self.url,
            "--listen-peer-urls", peer,
            "--initial-advertise-peer-urls", peer,
            "--initial-cluster", f"coterie-test={peer}",
            "--log-level", "warn",
        ]  # fmt: skip
        if self.netns is not None:
            argv = ["ip", "netns", "exec", self.netns, *argv]
        with self.log.open("ab") as log:
            proc = self._proc = subprocess.Popen(argv, stdout=log, stderr=log)
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                pytest.fail(f"etcd exited with {proc.returncode}: {self.log.read_text()[-2000:]}")
            if self._healthy():
                return
            if time.monotonic() > deadline:
                pytest.fail(f"etcd did not serve within {timeout} s")
            time.sleep(20 * MS)

    def _healthy(self) -> bool:
        if self.netns is not None:
            check = subprocess.run(
                ["ip", "netns", "exec", self.netns, "python3", "-c",
                 "import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=0.2)",
                 self.url + "/health"],
                capture_output=True, check=False,
            )  # fmt: skip
            return check.returncode == 0
        try:
            with urllib.request.urlopen(self.url + "/health", timeout=0.2) as resp:
                return bool(resp.status == 200)
        except (OSError, urllib.error.URLError):
            return False

    def stop(self, *, wipe: bool = False) -> None:
        """Stop it (SIGTERM, then wait); ``wipe`` deletes its data too."""
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=5_000 * MS)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            self._proc = None
        if wipe:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def close(self) -> None:
        """Stop it and delete its directory."""
        self.stop()
        self._dir.cleanup()


@pytest.fixture
def etcd_server() -> Iterator[EtcdServer]:
    """A started etcd that the test may stop and start again."""
    server = EtcdServer()
    server.start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def etcd_url(etcd_server: EtcdServer) -> str:
    """The client URL of an etcd started for one test."""
    return etcd_server.url
