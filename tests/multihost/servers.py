"""Servers on the bed's router: dnsmasq (DNS seeds) and redis-server (Redis discovery).

Both listen on the router's address on every segment, so each host reaches
them through its own default gateway. Each is a fixture of
``tests/multihost/conftest.py`` (``dns``, ``redis``), stopped after the test.
"""

from __future__ import annotations

import asyncio
import shutil
import signal
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from tests.bed import DOMAIN, Bed, Host

REDIS_PORT = 6379


async def _wait_until(host: Host, check: str, what: str, timeout: float = 10.0) -> None:
    """Run ``check`` (Python, raising OSError until ready) in ``host`` until it passes."""
    probe = (
        "import socket, sys, time\n"
        f"end = time.monotonic() + {timeout}\n"
        "while True:\n"
        "    try:\n"
        f"        {check}\n"
        "        break\n"
        "    except OSError:\n"
        "        if time.monotonic() > end: sys.exit(1)\n"
        "        time.sleep(0.01)\n"
    )
    proc = await host.spawn([sys.executable, "-c", probe])
    if await asyncio.wait_for(proc.wait(), timeout + 5) != 0:
        raise AssertionError(f"{what} is not ready within {timeout} s")


class Dnsmasq:
    """dnsmasq on the router, answering names of ``bed.test`` from a hosts file.

    :meth:`publish` rewrites the file and sends SIGHUP, which makes dnsmasq
    read it again: records appear and vanish while the mesh runs. Records
    have a zero TTL; the domain is local (a name it lacks is NXDOMAIN).
    """

    def __init__(self, bed: Bed) -> None:
        binary = shutil.which("dnsmasq") or (
            "/usr/sbin/dnsmasq" if Path("/usr/sbin/dnsmasq").exists() else None
        )
        if binary is None:
            pytest.skip("dnsmasq is not installed (scripts/system-deps.sh installs dnsmasq-base)")
        self.binary = binary
        self.bed = bed
        self.hosts_file = bed.workdir / "dns.hosts"
        self.proc: asyncio.subprocess.Process | None = None

    def _write(self, records: Mapping[str, Sequence[Host]]) -> None:
        lines = [f"{h.address} {_fqdn(name)}\n" for name, hosts in records.items() for h in hosts]
        self.hosts_file.write_text("".join(lines))

    def publish(self, records: Mapping[str, Sequence[Host]]) -> float:
        """Make each name resolve to its hosts' addresses; returns the time of the reload."""
        self._write(records)
        assert self.proc is not None
        self.proc.send_signal(signal.SIGHUP)
        return time.time()

    async def start(self, records: Mapping[str, Sequence[Host]]) -> None:
        """Start it with these records and wait until it answers the first name."""
        self._write(records)
        router = self.bed.router
        self.proc = await router.spawn(
            [self.binary, "--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv",
             "--no-hosts", f"--addn-hosts={self.hosts_file}", f"--local=/{DOMAIN}/",
             "--listen-address=" + ",".join(router.addresses.values()), "--bind-interfaces",
             "--pid-file=", "--user=root", "--group=root", "--local-ttl=0", "--port=53"],
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        name = _fqdn(next(iter(records)))
        await _wait_until(
            self.bed["a1"], f"socket.getaddrinfo({name!r}, 0, socket.AF_INET)", "dnsmasq"
        )

    async def stop(self) -> None:
        """Stop it."""
        if self.proc is not None and self.proc.returncode is None:
            self.proc.terminate()
            await asyncio.wait_for(self.proc.wait(), 10)
        self.proc = None


def _fqdn(name: str) -> str:
    return name if name.endswith(f".{DOMAIN}") else f"{name}.{DOMAIN}"


class RedisOnRouter:
    """A redis-server on the router, listening on every segment; it can restart."""

    def __init__(self, bed: Bed) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.skip("redis-server is not installed (scripts/system-deps.sh installs it)")
        self.binary = binary
        self.bed = bed
        self.proc: asyncio.subprocess.Process | None = None

    def url(self, host: Host) -> str:
        """The URL a host reaches it by: its router's address on the host's segment."""
        assert host.segment is not None
        return f"redis://{self.bed.gateway(host.segment)}:{REDIS_PORT}"

    async def start(self) -> None:
        """Start it and wait until it accepts connections."""
        router = self.bed.router
        self.proc = await router.spawn(
            [self.binary, "--port", str(REDIS_PORT), "--bind", *router.addresses.values(),
             "--protected-mode", "no", "--save", "", "--appendonly", "no"],
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        address = (self.bed.gateway("a"), REDIS_PORT)
        await _wait_until(router, f"socket.create_connection({address!r}, 0.2).close()", "redis")

    async def stop(self) -> None:
        """Stop it (SIGTERM)."""
        if self.proc is not None and self.proc.returncode is None:
            self.proc.terminate()
            await asyncio.wait_for(self.proc.wait(), 10)
        self.proc = None
