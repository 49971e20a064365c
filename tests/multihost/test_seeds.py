"""DNS seeds against a real DNS server whose records change while the mesh runs.

dnsmasq runs on the router and answers ``mesh.bed.test`` from a hosts file;
every bed host's ``/etc/resolv.conf`` names the router, so coterie resolves
the seed with the system resolver (``loop.getaddrinfo``), as in a Kubernetes
pod with a headless Service. Editing the file and sending SIGHUP changes the
A records: a new one joins the mesh (across the router: unicast hellos are
routed), a removed one is dropped though its node still runs. Node cote
takes part in node-discover's unicast mode, listing a coterie host.
"""

from __future__ import annotations

import asyncio
import shutil
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from tests.bed import Bed, Host
from tests.multihost.conftest import PeerFactory
from tests.multihost.peers import BedPeer

NAME = "mesh.bed.test"
INTERVAL_MS = 200


class Dnsmasq:
    """dnsmasq on the router, answering ``NAME`` from a hosts file it reloads on SIGHUP."""

    def __init__(self, bed: Bed) -> None:
        binary = shutil.which("dnsmasq") or (
            "/usr/sbin/dnsmasq" if Path("/usr/sbin/dnsmasq").exists() else None
        )
        if binary is None:
            pytest.skip("dnsmasq is not installed (scripts/system-deps.sh installs dnsmasq-base)")
        self.binary = binary
        self.bed = bed
        self.hosts_file = bed.workdir / "mesh.hosts"
        self.proc: asyncio.subprocess.Process | None = None

    def publish(self, *hosts: Host) -> float:
        """Make ``NAME`` resolve to these hosts' addresses; returns when it took effect."""
        self.hosts_file.write_text("".join(f"{h.address} {NAME}\n" for h in hosts))
        assert self.proc is not None
        self.proc.send_signal(signal.SIGHUP)
        return time.time()

    async def start(self, *hosts: Host) -> None:
        self.hosts_file.write_text("".join(f"{h.address} {NAME}\n" for h in hosts))
        router = self.bed.router
        self.proc = await router.spawn(
            [self.binary, "--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv",
             "--no-hosts", f"--addn-hosts={self.hosts_file}", "--local=/bed.test/",
             "--listen-address=" + ",".join(router.addresses.values()), "--bind-interfaces",
             "--pid-file=", "--user=root", "--group=root", "--local-ttl=0", "--port=53"],
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        probe = (
            "import socket, sys, time\n"
            "end = time.monotonic() + 10\n"
            "while True:\n"
            "    try:\n"
            f"        socket.getaddrinfo('{NAME}', 0, socket.AF_INET)\n"
            "        break\n"
            "    except OSError:\n"
            "        if time.monotonic() > end: sys.exit(1)\n"
            "        time.sleep(0.02)\n"
        )
        ready = await self.bed["a1"].spawn([sys.executable, "-c", probe])
        if await asyncio.wait_for(ready.wait(), 15) != 0:
            err = b""
            if self.proc.returncode is not None and self.proc.stderr is not None:
                err = await self.proc.stderr.read()
            raise AssertionError(f"dnsmasq does not answer: {err.decode()}")

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.terminate()
            await asyncio.wait_for(self.proc.wait(), 10)


@pytest.fixture
async def dns(bed: Bed) -> AsyncIterator[Dnsmasq]:
    server = Dnsmasq(bed)
    yield server
    await server.stop()


def _named(name: str) -> Callable[[dict[str, Any]], bool]:
    return lambda event: event["advertisement"].get("name") == name


SEEDED = {"COTERIE_DISCOVERY_SEEDS": NAME, "COTERIE_DISCOVERY_SEED_INTERVAL": str(INTERVAL_MS)}


async def _replies_from(req: BedPeer, name: str, tries: int = 8) -> None:
    for _ in range(tries):
        reply = await req.request({"type": "echo"}, timeout=5)
        assert reply["err"] is None, req.describe()
        if reply["res"]["by"] == name:
            return
    raise AssertionError(f"no reply from {name} in {tries} tries\n{req.describe()}")


async def test_the_mesh_follows_dns_records_as_they_change(
    bed: Bed, peer: PeerFactory, dns: Dnsmasq
) -> None:
    a1, a2, a3, b1, b2 = (bed[n] for n in ("a1", "a2", "a3", "b1", "b2"))
    await dns.start(a1, a2, a3)
    rep_a1, req, _, _, node_req = await asyncio.gather(
        peer(a1, "python", "responder", {"name": "rep-a1"}, env=SEEDED),
        peer(a2, "python", "requester", {"name": "req"}, env=SEEDED),
        # node-discover's unicast mode: Node lists the coterie host it knows.
        peer(a3, "node", "responder", {"name": "node-rep",
                                       "discovery": {"unicast": [a2.address]}}),
        peer(b1, "python", "responder", {"name": "rep-b1"}, env=SEEDED),  # not in DNS yet
        peer(b2, "node", "requester", {"name": "node-req", "discovery": {"unicast": [b1.address]}}),
    )  # fmt: skip
    for name in ("rep-a1", "node-rep"):
        await req.wait_for("added", timeout=5, predicate=_named(name))
        await _replies_from(req, name)
    # b1 sends its hellos to the seeds, but it is not one of them: ignored.
    assert not req.find("added", _named("rep-b1"))

    # A new A record joins the mesh, across the router.
    joined_at = dns.publish(a1, a2, a3, b1, b2)
    added = await req.wait_for("added", timeout=5, predicate=_named("rep-b1"))
    join_s = added["_rx"] - joined_at
    assert added["address"] == added["connect"] == b1.address
    await _replies_from(req, "rep-b1")
    # ... and Node, listing b1, hears the seeded coterie nodes once b2 is a seed.
    await node_req.wait_for("added", timeout=5, predicate=_named("rep-b1"))
    await _replies_from(node_req, "rep-b1")

    # A removed record is dropped, though its node still runs.
    left_at = dns.publish(a2, a3, b1, b2)
    removed = await req.wait_for("removed", timeout=5, predicate=_named("rep-a1"))
    leave_s = removed["_rx"] - left_at
    assert rep_a1.proc.returncode is None
    for _ in range(4):
        reply = await req.request({"type": "echo"}, timeout=5)
        assert reply["err"] is None and reply["res"]["by"] != "rep-a1", req.describe()
    status_cmd = {"cmd": "status"}
    await req.send_cmd(status_cmd)
    status = await req.wait_for("status", timeout=5)
    assert status["members"] == sorted(h.address for h in (a2, a3, b1, b2))
    # With a 200 ms interval and dnsmasq's zero TTL, both take about one interval.
    print(f"\nseeds: new record joined in {join_s:.3f} s, removed one dropped in {leave_s:.3f} s")
    assert join_s < 3 and leave_s < 3
