"""The scale harness: ``python -m bench scale``.

    python -m bench scale [--nodes 100,300,1000] [--backends broadcast,redis,...]
                          [--procs K] [--json out.json]

Design: N nodes are components spread round-robin over K worker processes
(``bench/scale_worker.py``, or ``bench/scale_worker.js`` for Node cote), all
on loopback inside the bench's private network namespace. The mesh is made
of services of ten nodes: five responders and five requesters sharing a
namespace (``svc<j>``), so every requester must link to five responders and
the links grow as N, while discovery (every node hears of every node on
broadcast and cote's Redis channel) grows as N².

Per back-end and size it reports:

- *converge*: from ``go`` (sent to every worker at once, after they have
  all imported their library) until every requester of the mesh holds all
  its links;
- *idle*: after a settle time, over a window: CPU (user + system, share of
  one core) and RSS per worker process, and of the registry server;
- *discovery messages a second*, idle: broadcast: UDP datagrams sent and
  delivered in the namespace (``/proc/net/snmp``, with receive-buffer drops);
  Redis: PUBLISH calls and their deliveries (publishes times the mean
  subscribers of the channels hellos go to); etcd: writes, watch events sent, lease
  keep-alives (the server's ``/metrics``);
- *restarts*: the whole mesh, then half of its processes, replaced at once
  (new processes start while the old ones close): the time until every
  requester is linked again, the peak of discovery messages a second, and
  the removals of healthy nodes, i.e. of nodes that were running when some
  peer dropped them (a node that left is due to be removed; one that is up
  is not).

Everything is bounded: each wait has a timeout, worker processes are killed
when they do not exit, the servers are stopped, and a size that does not
converge skips its idle and restart steps.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import system
from bench.proc import ROOT, BenchError, Impl, Proc

SERVICE = 10  # nodes per service: five responders, five requesters
COTE_TIMINGS = {"hello_interval": 2000, "check_interval": 4000, "node_timeout": 5000,
                "master_timeout": 6000}  # fmt: skip
BACKENDS = ("broadcast", "redis", "redis-group", "etcd", "cote", "cote-redis")


@dataclass
class Limits:
    """How long each step may take, and the windows measured."""

    load: float = 180.0
    converge: float = 60.0
    settle: float = 5.0
    idle: float = 10.0
    restart_watch: float = 10.0
    stop: float = 10.0


class ScaleImpl(Impl):
    """A worker of the scale harness (Python or Node)."""

    def command(self, role: str, config: dict[str, Any]) -> list[str]:
        """The argv of one scale worker."""
        text = json.dumps(config)
        if self.is_node:
            return ["node", str(ROOT / "bench" / "scale_worker.js"), role, text]
        return [sys.executable, "-m", "bench.scale_worker", role, text]


def free_port(kind: socket.SocketKind = socket.SOCK_STREAM) -> int:
    """A free loopback port."""
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def layout(nodes: int, procs: int) -> list[list[dict[str, Any]]]:
    """The components of each process: services of ten, spread round-robin."""
    per: list[list[dict[str, Any]]] = [[] for _ in range(procs)]
    for i in range(nodes):
        service, rank = divmod(i, SERVICE)
        role = "rep" if rank < SERVICE // 2 else "req"
        per[i % procs].append(
            {"role": role, "name": f"{role}{i}", "namespace": f"svc{service}",
             "expect": SERVICE // 2}
        )  # fmt: skip
    return per


# -- servers ------------------------------------------------------------------


class Server:
    """A registry server in the namespace (redis-server or etcd), or none."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self._dir: tempfile.TemporaryDirectory[str] | None = None

    @property
    def url(self) -> str:
        scheme = "redis" if self.kind == "redis" else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    def start(self) -> None:
        if self.kind == "redis":
            binary = shutil.which("redis-server")
            if binary is None:
                raise BenchError("redis-server is not installed")
            argv = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                    "--appendonly", "no", "--maxclients", "20000",
                    "--tcp-backlog", "4096"]  # fmt: skip
        else:
            binary = shutil.which("etcd")
            if binary is None:
                raise BenchError("etcd is not installed (Debian: etcd-server)")
            self._dir = tempfile.TemporaryDirectory(prefix="coterie-scale-etcd-")
            peer = f"http://127.0.0.1:{free_port()}"
            argv = [binary, "--name", "scale", "--data-dir", self._dir.name + "/data",
                    "--listen-client-urls", self.url, "--advertise-client-urls", self.url,
                    "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
                    "--initial-cluster", f"scale={peer}", "--log-level", "error"]  # fmt: skip
        self.proc = subprocess.Popen(
            argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=_many_files
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2),
            ):
                time.sleep(0.3)
                return
            time.sleep(0.05)
        raise BenchError(f"{self.kind} did not listen within 20 s")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None
        if self._dir is not None:
            self._dir.cleanup()


def _many_files() -> None:
    """A connection per component and more: lift the server's open-file limit."""
    import resource

    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (65536, 65536))


# -- counters -----------------------------------------------------------------


def _udp() -> dict[str, int]:
    lines = Path("/proc/net/snmp").read_text().splitlines()
    heads, values = [ln.split() for ln in lines if ln.startswith("Udp:")][:2]
    return dict(zip(heads[1:], map(int, values[1:]), strict=True))


async def _redis_counts(url: str) -> dict[str, int]:
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(url)
    try:
        stats = await client.info("commandstats")
        channels = await client.pubsub_channels()
        subs = await client.pubsub_numsub(*channels) if channels else []
    finally:
        await client.aclose()
    publishes = int(stats.get("cmdstat_publish", {}).get("calls", 0))
    # Observers' channels (".../+") have every component as subscriber but no
    # publisher in this mesh: they do not count towards a hello's receivers.
    names = [(n.decode() if isinstance(n, bytes) else n, int(c)) for n, c in subs]
    counted = [c for name, c in names if not name.endswith("/+")]
    return {"publish": publishes, "channels": len(counted), "subscriptions": sum(counted)}


async def _etcd_counts(url: str) -> dict[str, int]:
    import aiohttp

    wanted = {
        "etcd_debugging_mvcc_put_total": "put",
        "etcd_debugging_mvcc_delete_total": "delete",
        "etcd_debugging_mvcc_events_total": "events",
    }
    counts = {"put": 0, "delete": 0, "events": 0, "keepalive": 0}
    async with aiohttp.ClientSession() as session, session.get(url + "/metrics") as resp:
        text = await resp.text()
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        name, _, value = line.rpartition(" ")
        base = name.split("{", 1)[0]
        if base in wanted:
            counts[wanted[base]] += int(float(value))
        elif base == "grpc_server_msg_received_total" and "LeaseKeepAlive" in name:
            counts["keepalive"] += int(float(value))
    return counts


class Meter:
    """Discovery messages of one back-end, read as counters."""

    def __init__(self, backend: str, server: Server | None) -> None:
        self.backend = backend
        self.server = server

    async def read(self) -> dict[str, int]:
        if self.server is None:
            udp = _udp()
            return {"sent": udp["OutDatagrams"], "delivered": udp["InDatagrams"],
                    "dropped": udp["RcvbufErrors"]}  # fmt: skip
        if self.server.kind == "redis":
            r = await _redis_counts(self.server.url)
            mean = r["subscriptions"] / r["channels"] if r["channels"] else 0.0
            return {"sent": r["publish"], "delivered": int(r["publish"] * mean), "dropped": 0}
        e = await _etcd_counts(self.server.url)
        writes = e["put"] + e["delete"]
        return {"sent": writes + e["keepalive"], "delivered": e["events"], "dropped": 0,
                "keepalive": e["keepalive"], "writes": writes}  # fmt: skip

    async def read_or_none(self) -> dict[str, int] | None:
        """:meth:`read`, or ``None`` when the server is too busy to answer in time."""
        try:
            return await asyncio.wait_for(self.read(), 5.0)
        except Exception:  # a busy server: this sample is skipped
            return None

    @staticmethod
    def rate(before: dict[str, int], after: dict[str, int], seconds: float) -> dict[str, float]:
        return {k: (after[k] - before.get(k, 0)) / seconds for k in after}


def _cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# -- one mesh -------------------------------------------------------------------


@dataclass
class Mesh:
    """The worker processes of one run, and what they said."""

    impl: ScaleImpl
    per_proc: list[list[dict[str, Any]]]
    limits: Limits
    procs: list[Proc] = field(default_factory=list)
    alive: set[str] = field(default_factory=set)
    healthy_removed: int = 0
    due_removed: int = 0
    linked: dict[int, bool] = field(default_factory=dict)
    slot_ids: dict[int, list[str]] = field(default_factory=dict)
    linked_at: dict[int, float] = field(default_factory=dict)
    retired: list[Proc] = field(default_factory=list)
    _readers: list[asyncio.Task[None]] = field(default_factory=list)

    async def spawn(self, indexes: list[int]) -> list[Proc]:
        """Start the workers of these slots and wait until each has loaded."""
        new = []
        for i in indexes:
            proc = Proc(self.impl, "mesh", f"{self.impl.name} worker {i}")
            await proc.start({"components": self.per_proc[i], "discovery": self.impl.discovery})
            new.append(proc)
        await asyncio.gather(*(p.expect("loaded", self.limits.load) for p in new))
        return new

    async def go(self, slots: list[tuple[int, Proc]]) -> None:
        """Start the components of these (already loaded) workers at once."""
        for i, proc in slots:
            self.linked[i] = False
            proc.send({"cmd": "go"})
        for i, proc in slots:
            started = await proc.expect("started", self.limits.load)
            self.slot_ids[i] = [str(x) for x in started["ids"]]
            self.alive.update(self.slot_ids[i])
            self._readers.append(asyncio.create_task(self._follow(i, proc)))

    async def _follow(self, slot: int, proc: Proc) -> None:
        while True:
            event = await proc.events.get()
            name = event.get("event")
            if name == "linked":
                self.linked[slot] = True
                self.linked_at[slot] = event["_at"]
            elif name == "unlinked":
                self.linked[slot] = False
            elif name == "removed":
                if event.get("id") in self.alive:
                    self.healthy_removed += 1
                else:
                    self.due_removed += 1
            elif name in ("eof", "closed"):
                return

    async def wait_linked(self, timeout: float) -> float | None:
        """Seconds until every worker reports all its requesters linked, or None."""
        started = time.perf_counter()
        while time.perf_counter() - started < timeout:
            if all(self.linked.values()):
                return time.perf_counter() - started
            await asyncio.sleep(0.02)
        return None

    async def retire(self, slots: list[int], procs: list[Proc]) -> None:
        """Mark their nodes gone, then stop them (bounded)."""
        self.retired.extend(procs)
        for i in slots:
            self.alive.difference_update(self.slot_ids.get(i, ()))
        await asyncio.gather(*(p.stop(self.limits.stop) for p in procs), return_exceptions=True)

    async def close(self) -> None:
        await asyncio.gather(*(p.stop(self.limits.stop) for p in self.procs),
                             return_exceptions=True)  # fmt: skip
        for task in self._readers:
            task.cancel()


async def _peak(meter: Meter, stop: asyncio.Event, step: float = 0.5) -> float:
    """The highest rate of discovery messages delivered over ``step`` windows."""
    best = 0.0
    last = await meter.read_or_none()
    while not stop.is_set():
        started = time.perf_counter()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), step)
        now = await meter.read_or_none()
        if now is not None and last is not None:
            span = time.perf_counter() - started
            best = max(best, (now["delivered"] - last["delivered"]) / span)
        last = now
    return best


async def run_one(backend: str, nodes: int, procs: int, limits: Limits,
                  log: Any) -> dict[str, Any]:  # fmt: skip
    """Measure one back-end at one size; returns the row."""
    row: dict[str, Any] = {"backend": backend, "nodes": nodes, "procs": procs,
                           "bound_s": limits.converge}  # fmt: skip
    server = (
        Server("redis") if "redis" in backend else Server("etcd") if backend == "etcd" else None
    )
    discovery: dict[str, Any]
    node = backend.startswith("cote")
    port = free_port(socket.SOCK_DGRAM)
    if node:
        discovery = {"helloInterval": 2000, "checkInterval": 4000, "nodeTimeout": 5000,
                     "masterTimeout": 6000, "port": port}  # fmt: skip
    else:
        discovery = {**COTE_TIMINGS, "port": port, "broadcast": "255.255.255.255"}
    try:
        if server is not None:
            server.start()
            if node:
                discovery["redis"] = {"host": "127.0.0.1", "port": server.port}
            elif server.kind == "redis":
                discovery["redis"] = server.url
                discovery["hostname"] = "127.0.0.1"
                if backend == "redis-group":
                    discovery["redis_channel"] = "group"
            else:
                discovery["etcd"] = server.url
                discovery["hostname"] = "127.0.0.1"
        impl = ScaleImpl("cote" if node else "coterie", "scale", discovery)
        mesh = Mesh(impl, layout(nodes, procs), limits)
        meter = Meter(backend, server)
        try:
            await _measure(mesh, meter, server, row, log)
        finally:
            await mesh.close()
            # What the workers warned of (an etcd lease lost, Redis lost, ...).
            said = {line for p in (*mesh.procs, *mesh.retired) for line in p.stderr_tail}
            row["warnings"] = sorted(w for w in said if "lost" in w or "expired" in w)[:5]
    except Exception as exc:  # a failed run is reported, and the others still run
        row["error"] = f"{type(exc).__name__}: {exc}"
        log(f"{backend} N={nodes}: {row['error']}")
    finally:
        if server is not None:
            server.stop()
    return row


async def _measure(mesh: Mesh, meter: Meter, server: Server | None, row: dict[str, Any],
                   log: Any) -> None:  # fmt: skip
    limits = mesh.limits
    k = len(mesh.per_proc)
    t0 = time.perf_counter()
    mesh.procs = await mesh.spawn(list(range(k)))
    row["load_s"] = round(time.perf_counter() - t0, 1)
    await mesh.go(list(enumerate(mesh.procs)))
    converge = await mesh.wait_linked(limits.converge)
    row["converge_s"] = None if converge is None else round(converge, 2)
    row["linked_procs"] = sum(mesh.linked.values())
    log(f"{row['backend']} N={row['nodes']}: converge {row['converge_s']} s")
    if converge is None:
        row["healthy_removed_start"] = mesh.healthy_removed
        return
    await asyncio.sleep(limits.settle)
    row["healthy_removed_start"] = mesh.healthy_removed
    # idle window
    pids = [p.pid for p in mesh.procs]
    if server is not None and server.proc is not None:
        pids.append(server.proc.pid)
    cpu0 = [_cpu_seconds(pid) for pid in pids]
    c0 = await meter.read()
    t0 = time.perf_counter()
    await asyncio.sleep(limits.idle)
    span = time.perf_counter() - t0
    c1 = await meter.read()
    cpu = [
        (_cpu_seconds(pid) - before) / span * 100 for pid, before in zip(pids, cpu0, strict=True)
    ]
    workers = cpu[:k]
    row["cpu_proc_pct"] = round(sum(workers) / k, 2)
    row["cpu_node_pct"] = round(sum(workers) / row["nodes"], 3)
    row["cpu_server_pct"] = round(cpu[k], 2) if len(cpu) > k else None
    rss = [system.rss_kib(p.pid) or 0 for p in mesh.procs]
    row["rss_proc_mib"] = round(sum(rss) / k / 1024, 1)
    rate = Meter.rate(c0, c1, span)
    row["idle_msgs_sent_s"] = round(rate["sent"], 1)
    row["idle_msgs_delivered_s"] = round(rate["delivered"], 1)
    row["idle_dropped_s"] = round(rate["dropped"], 1)
    if "keepalive" in rate:
        row["idle_keepalive_s"] = round(rate["keepalive"], 1)
        row["idle_writes_s"] = round(rate["writes"], 1)
    row["healthy_removed_idle"] = mesh.healthy_removed - row["healthy_removed_start"]
    log(f"{row['backend']} N={row['nodes']}: idle cpu/proc {row['cpu_proc_pct']} % "
        f"delivered/s {row['idle_msgs_delivered_s']}")  # fmt: skip
    for label, share in (("whole", 1.0), ("half", 0.5)):
        slots = list(range(k)) if share == 1.0 else list(range(0, k, 2))
        await _restart(mesh, meter, slots, label, row, log)
        if row.get(f"{label}_relinked_s") is None:
            break


async def _restart(mesh: Mesh, meter: Meter, slots: list[int], label: str,
                   row: dict[str, Any], log: Any) -> None:  # fmt: skip
    """Replace the workers of ``slots`` at once: new ones start as the old close."""
    limits = mesh.limits
    removed0 = mesh.healthy_removed
    fresh = await mesh.spawn(slots)
    old = [mesh.procs[i] for i in slots]
    stop = asyncio.Event()
    peak = asyncio.create_task(_peak(meter, stop))
    started = time.perf_counter()
    retiring = asyncio.create_task(mesh.retire(slots, old))
    retiring.add_done_callback(
        lambda _t: row.__setitem__(f"{label}_stop_s", round(time.perf_counter() - started, 2))
    )
    for i, proc in zip(slots, fresh, strict=True):
        mesh.procs[i] = proc
    await mesh.go(list(zip(slots, fresh, strict=True)))
    await retiring
    await asyncio.sleep(0.2)  # survivors notice the links the old ones closed
    relinked = await mesh.wait_linked(limits.converge)
    # From the switch until the last worker got all its links back (the old
    # ones' closing is not counted unless someone waited for it).
    last = max(mesh.linked_at.values())
    row[f"{label}_relinked_s"] = None if relinked is None else round(last - started, 2)
    await asyncio.sleep(limits.restart_watch)
    stop.set()
    row[f"{label}_peak_delivered_s"] = round(await peak, 1)
    row[f"{label}_healthy_removed"] = mesh.healthy_removed - removed0
    log(f"{row['backend']} N={row['nodes']}: {label} restart relinked "
        f"{row[f'{label}_relinked_s']} s (old ones stopped in {row.get(f'{label}_stop_s')} s), "
        f"healthy removed {row[f'{label}_healthy_removed']}, "
        f"peak {row[f'{label}_peak_delivered_s']}/s")  # fmt: skip


# -- command line -------------------------------------------------------------------


def default_procs(nodes: int) -> int:
    """The issue's layouts: 100 in 5 processes, 300 in 10, 1,000 in 20."""
    return max(2, min(50, nodes // 50 if nodes >= 1000 else nodes // 30 if nodes >= 300 else 5))


def table(rows: list[dict[str, Any]]) -> str:
    """The rows as a Markdown table."""
    cols = [
        ("backend", "back-end"), ("nodes", "N"), ("procs", "K"), ("converge_s", "linked (s)"),
        ("cpu_proc_pct", "idle CPU/proc %"), ("cpu_node_pct", "idle CPU/node %"),
        ("cpu_server_pct", "server CPU %"), ("rss_proc_mib", "RSS/proc MiB"),
        ("idle_msgs_sent_s", "msgs sent/s"), ("idle_msgs_delivered_s", "msgs delivered/s"),
        ("idle_dropped_s", "dropped/s"), ("whole_relinked_s", "whole restart: relinked (s)"),
        ("whole_healthy_removed", "healthy removed"), ("whole_peak_delivered_s", "peak/s"),
        ("half_relinked_s", "half restart: relinked (s)"),
        ("half_healthy_removed", "healthy removed"), ("half_peak_delivered_s", "peak/s"),
    ]  # fmt: skip
    out = ["| " + " | ".join(h for _, h in cols) + " |", "|" + "---|" * len(cols)]
    for row in rows:
        cells = []
        for key, _ in cols:
            value = row.get(key)
            cells.append("—" if value is None else str(value))
        if row.get("error"):
            cells[3] = f"error: {row['error']}"
        elif row.get("converge_s") is None:
            cells[3] = (
                f"not within {row.get('bound_s')} s ({row.get('linked_procs')}/{row['procs']})"
            )
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out)


def main(argv: list[str]) -> int:
    """Run the harness; 0 when every run converged."""
    parser = argparse.ArgumentParser(
        prog="python -m bench scale", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--nodes", default="100,300,1000", help="comma-separated mesh sizes")
    parser.add_argument("--backends", default=",".join(BACKENDS),
                        help=f"comma-separated, of {','.join(BACKENDS)}")  # fmt: skip
    parser.add_argument("--procs", type=int, default=None, help="processes (default by size)")
    parser.add_argument("--idle", type=float, default=10.0, help="idle window, seconds")
    parser.add_argument("--converge", type=float, default=60.0, help="convergence bound, s")
    parser.add_argument("--json", type=Path, default=None, help="append the rows here")
    parser.add_argument(
        "--smoke", action="store_true", help="short windows (2 s), to prove the harness works"
    )
    args = parser.parse_args(argv)
    backends = [b for b in args.backends.split(",") if b]
    unknown = set(backends) - set(BACKENDS)
    if unknown:
        parser.error(
            f"unknown back-end(s) {','.join(sorted(unknown))}; known: {','.join(BACKENDS)}"
        )
    sizes = [int(n) for n in args.nodes.split(",") if n]
    if any(n < SERVICE or n % SERVICE for n in sizes):
        parser.error(f"sizes are multiples of {SERVICE}")
    if any(b.startswith("cote") for b in backends):
        ok, why = system.ensure_node()
        if not ok:
            print(f"scale: Node cote skipped: {why}", flush=True)
            backends = [b for b in backends if not b.startswith("cote")]
    in_netns, how = system.enter_private_netns()
    if not in_netns:
        print(f"scale: needs a private network namespace (root): {how}", file=sys.stderr)
        return 2
    limits = Limits(idle=args.idle, converge=args.converge)
    if args.smoke:
        limits = Limits(idle=2.0, converge=args.converge, settle=0.5, restart_watch=1.0)

    def log(text: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)

    log(f"scale: {how}; load average {system.load_average():.2f}; "
        f"coterie {system.coterie_source()}")  # fmt: skip
    rows = []
    for nodes in sizes:
        for backend in backends:
            procs = args.procs or default_procs(nodes)
            row = asyncio.run(run_one(backend, nodes, procs, limits, log))
            row["load_average"] = round(system.load_average(), 2)
            rows.append(row)
            if args.json is not None:
                with args.json.open("a") as out:
                    out.write(json.dumps(row) + "\n")
    print(table(rows))
    return 0 if all(r.get("converge_s") is not None for r in rows) else 1
