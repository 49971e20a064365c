"""etcd discovery across subnets: etcd on the router, coterie nodes on both segments.

Broadcasts stop at the router, so nodes on segments a and b find each other
only through etcd. Each announces the local address of its route to etcd,
which the other segment reaches through the router. (Node cote has no etcd
discovery: it cannot take part.)
"""

from __future__ import annotations

import asyncio
import shutil
import sys
from collections.abc import AsyncIterator

import pytest

from tests.bed import Bed, Host
from tests.multihost.conftest import PeerFactory
from tests.multihost.peers import replies_from

ETCD_PORT = 2379
ETCD_PEER_PORT = 2380


class EtcdOnRouter:
    """An etcd on the router, serving every segment; it can restart with its data."""

    def __init__(self, bed: Bed) -> None:
        binary = shutil.which("etcd")
        if binary is None:
            pytest.skip("etcd is not installed (scripts/system-deps.sh installs etcd-server)")
        self.binary = binary
        self.bed = bed
        self.data = bed.workdir / "etcd-data"
        self.proc: asyncio.subprocess.Process | None = None

    def url(self, host: Host) -> str:
        """The URL a host reaches it by: its router's address on the host's segment."""
        assert host.segment is not None
        return f"http://{self.bed.gateway(host.segment)}:{ETCD_PORT}"

    async def start(self) -> None:
        """Start it and wait until a host of segment b reads from it."""
        router = self.bed.router
        clients = ",".join(f"http://{a}:{ETCD_PORT}" for a in router.addresses.values())
        peer = f"http://{self.bed.gateway('a')}:{ETCD_PEER_PORT}"
        self.proc = await router.spawn(
            [self.binary, "--name", "bed", "--data-dir", str(self.data),
             "--listen-client-urls", clients, "--advertise-client-urls", clients,
             "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
             "--initial-cluster", f"bed={peer}", "--log-level", "error"],
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        health = self.url(self.bed["b1"]) + "/health"
        probe = (
            "import sys, time, urllib.request\n"
            "end = time.monotonic() + 20\n"
            "while True:\n"
            "    try:\n"
            f"        urllib.request.urlopen({health!r}, timeout=0.3)\n"
            "        break\n"
            "    except OSError:\n"
            "        if time.monotonic() > end: sys.exit(1)\n"
            "        time.sleep(0.05)\n"
        )
        check = await self.bed["b1"].spawn([sys.executable, "-c", probe])
        assert await asyncio.wait_for(check.wait(), 30) == 0, "etcd did not serve within 20 s"

    async def stop(self) -> None:
        """Stop it (SIGTERM); its data stays."""
        if self.proc is not None and self.proc.returncode is None:
            self.proc.terminate()
            await asyncio.wait_for(self.proc.wait(), 10)
        self.proc = None


@pytest.fixture
async def etcd(bed: Bed) -> AsyncIterator[EtcdOnRouter]:
    """A started etcd on the router, serving every segment."""
    server = EtcdOnRouter(bed)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()
        shutil.rmtree(server.data, ignore_errors=True)


def _env(etcd: EtcdOnRouter, host: Host) -> dict[str, str]:
    return {"COTERIE_DISCOVERY_ETCD": etcd.url(host)}


async def test_a_mesh_across_both_segments_through_etcd(
    bed: Bed, peer: PeerFactory, etcd: EtcdOnRouter
) -> None:
    a1, a2, a3, b1, b2 = (bed[n] for n in ("a1", "a2", "a3", "b1", "b2"))
    rep_a, other_ns, req_b = await asyncio.gather(
        peer(a1, "python", "responder", {"name": "rep-a", "key": "k"}, env=_env(etcd, a1)),
        peer(a2, "python", "responder", {"name": "other", "key": "k", "namespace": "n2"},
             env=_env(etcd, a2)),
        peer(b1, "python", "requester", {"name": "req-b", "key": "k"}, env=_env(etcd, b1)),
    )  # fmt: skip
    assert rep_a.ready is not None and rep_a.ready["advertised"] == [a1.address]
    await replies_from(req_b, "rep-a")  # dialled across the router, at a1's address

    # A responder on b, the requester's own segment, and one more on a.
    await peer(b2, "python", "responder", {"name": "rep-b", "key": "k"}, env=_env(etcd, b2))
    await replies_from(req_b, "rep-b")

    # etcd restarts: links stay, and a node started afterwards is found.
    await etcd.stop()
    await replies_from(req_b, "rep-a")
    await etcd.start()
    await peer(a3, "python", "responder", {"name": "late", "key": "k"}, env=_env(etcd, a3))
    await replies_from(req_b, "late", within=10)

    # A node that closes leaves at once, across the router.
    await rep_a.close()
    gone = await req_b.wait_for("removed", timeout=3)
    assert gone["advertisement"]["name"] == "rep-a"
    # The nodes that came later were heard of across the router (req-b read
    # rep-a while it started, before its listener was on); the other
    # namespace never was, on either side.
    seen = {e["advertisement"]["name"]: e for e in req_b.find("added")}
    assert {"rep-b", "late"} <= set(seen) <= {"rep-a", "rep-b", "late"}
    assert seen["late"]["advertised"] == seen["late"]["connect"] == a3.address
    assert other_ns.find("added") == []
