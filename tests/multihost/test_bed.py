"""The bed itself: routing between segments, faults that cut both ways, no leftovers."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap

import pytest

from tests.bed import REPO_ROOT, Bed, Host

# Listens on UDP 12345 (broadcasts included) and TCP 7000 for a while and
# prints what reaches it; then it exits.
LISTEN = textwrap.dedent("""
    import socket, select, sys, time
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    u.bind(("0.0.0.0", 12345))
    t = socket.socket()
    t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    t.bind(("0.0.0.0", 7000))
    t.listen()
    print("ready", flush=True)
    end = time.monotonic() + float(sys.argv[1])
    while (left := end - time.monotonic()) > 0:
        for s in select.select([u, t], [], [], left)[0]:
            if s is u:
                data, src = u.recvfrom(100)
                print("udp", data.decode(), src[0], flush=True)
            else:
                c, src = t.accept()
                print("tcp", src[0], flush=True)
                c.close()
""")

# Sends one UDP datagram to each argument and tries a TCP connection to each
# unicast one; prints what worked.
SEND = textwrap.dedent("""
    import socket, sys
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
    for dest in sys.argv[1:]:
        try:
            u.sendto(dest.encode(), (dest, 12345))
        except OSError as exc:
            print("udp-error", dest, exc.errno, flush=True)
        if not dest.endswith("255"):
            try:
                socket.create_connection((dest, 7000), timeout=0.5).close()
                print("tcp-ok", dest, flush=True)
            except OSError as exc:
                print("tcp-error", dest, type(exc).__name__, flush=True)
""")


async def _listen(host: Host, seconds: float) -> asyncio.subprocess.Process:
    proc = await host.spawn(
        [sys.executable, "-c", LISTEN, str(seconds)], stdout=asyncio.subprocess.PIPE
    )
    assert proc.stdout is not None
    assert (await asyncio.wait_for(proc.stdout.readline(), 10)).strip() == b"ready"
    return proc


async def _send(host: Host, *dests: str) -> list[str]:
    proc = await host.spawn([sys.executable, "-c", SEND, *dests], stdout=asyncio.subprocess.PIPE)
    out, _ = await asyncio.wait_for(proc.communicate(), 10)
    return out.decode().split("\n")


async def _heard(proc: asyncio.subprocess.Process) -> list[str]:
    out, _ = await asyncio.wait_for(proc.communicate(), 10)
    return [line for line in out.decode().split("\n") if line]


async def test_hosts_reach_each_other_in_and_across_segments(bed: Bed) -> None:
    a1, a2, b1 = bed["a1"], bed["a2"], bed["b1"]
    listeners = [await _listen(h, 0.6) for h in (a2, b1)]
    sent = await _send(a1, a2.address, b1.address, bed.broadcast("a"), "255.255.255.255")
    assert f"tcp-ok {a2.address}" in sent and f"tcp-ok {b1.address}" in sent
    heard_a2, heard_b1 = [await _heard(p) for p in listeners]
    # Both broadcasts reach a2; neither crosses the router to b1.
    for dest in (a2.address, bed.broadcast("a"), "255.255.255.255"):
        assert f"udp {dest} {a1.address}" in heard_a2
    assert heard_b1 == [f"udp {b1.address} {a1.address}", f"tcp {a1.address}"]


async def test_partition_cuts_both_ways_and_heals(bed: Bed) -> None:
    a1, a2, b1 = bed["a1"], bed["a2"], bed["b1"]
    a1.partition()
    try:
        listeners = [await _listen(h, 0.6) for h in (a1, a2, b1)]
        out_a1 = await _send(a1, a2.address, b1.address, bed.broadcast("a"))
        out_a2 = await _send(a2, a1.address, bed.broadcast("a"))
        heard_a1, heard_a2, heard_b1 = [await _heard(p) for p in listeners]
    finally:
        a1.heal()
    assert not any(line.startswith("tcp-ok") for line in out_a1 + out_a2)
    assert all(a1.address not in line for line in heard_a2 + heard_b1)  # nothing from a1
    assert all(a2.address not in line for line in heard_a1)  # nothing reaches a1
    assert f"udp {bed.broadcast('a')} {a2.address}" not in heard_a1

    listener = await _listen(a2, 0.6)
    assert f"tcp-ok {a2.address}" in await _send(a1, a2.address)
    assert f"tcp {a1.address}" in await _heard(listener)


async def test_link_down_cuts_the_host_off_and_up_restores_it(bed: Bed) -> None:
    a1, a2 = bed["a1"], bed["a2"]
    a1.link_down()
    try:
        assert f"tcp-error {a2.address} TimeoutError" in await _send(a1, a2.address)
    finally:
        a1.heal()
    listener = await _listen(a2, 0.6)
    assert f"tcp-ok {a2.address}" in await _send(a1, a2.address)
    await _heard(listener)


def test_down_kills_every_process_of_the_bed_and_leaves_nothing() -> None:
    small = Bed(1, ttl=60)
    small.up()
    holders = [p.pid for p in small.holders]
    namespaces = set(small.namespaces)
    # A process the bed did not start itself, left running in a host.
    small["a1"].run("sh", "-c", "sleep 60 >/dev/null 2>&1 &")
    assert len(small.processes()) == len(holders) + 1
    small.down()
    assert small.processes() == [] and small.hosts == {}
    for pid in holders:
        assert not os.path.exists(f"/proc/{pid}")
    left = [e for e in os.listdir("/proc") if e.isdigit() and _netns(e) in namespaces]
    assert left == []
    done = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True)
    assert [line.split(":")[1].strip() for line in done.stdout.splitlines()] == ["lo"]


def _netns(pid: str) -> int | None:
    try:
        return os.stat(f"/proc/{pid}/ns/net").st_ino
    except OSError:
        return None


def test_the_bed_refuses_a_namespace_it_did_not_make() -> None:
    # A fresh process never entered a namespace of its own: it must refuse
    # before creating anything.
    code = (
        "from tests.bed import Bed, BedError\ntry:\n    Bed().up()\nexcept BedError as e:\n"
        "    print('refused:', e)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO_ROOT, timeout=30
    )
    assert done.stdout.startswith("refused: not in a private network namespace"), done


@pytest.fixture(autouse=True)
def _heal(bed: Bed) -> object:
    yield
    bed.heal_all()
