"""coterie against the Python libraries users would pick instead: pyzmq and grpc.aio.

Design: each peer is a server and a client process on loopback
(``bench/peers.py``) doing coterie's bench job: a JSON request dict in, the
dict echoed back with ``by`` and ``pid``. A coterie pair of its own runs
beside them. Each round measures every one at 100 in flight (throughput) and
at 1 in flight (every request timed, p50), rotating which goes first, so the
ratios come from the same conditions. A peer that cannot start (its package
missing) is left out with a note; the others still run.
"""

from __future__ import annotations

from bench.model import Context, Row
from bench.proc import BenchError, Group, Impl, Proc
from bench.scenarios.common import bench, percentile, start_requester, start_responders, warm_up

#: name -> (module roles prefix, package to install), in table order.
PEERS = {"pyzmq": "zmq", "grpc.aio": "grpc"}
COTERIE = Impl("coterie", "bench-coterie-peers")


def rows() -> dict[str, Row]:
    """Two rows per peer: throughput at 100 in flight and p50 at 1 in flight."""
    out: dict[str, Row] = {}
    for name, short in PEERS.items():
        out[f"peer_{short}_c100"] = Row(
            f"peer_{short}_c100",
            f"req/resp throughput, 100 in flight, vs {name}",
            "req/s",
            higher_is_better=True,
            reference=name,
        )
        out[f"peer_{short}_p50"] = Row(
            f"peer_{short}_p50",
            f"sequential latency p50, vs {name}",
            "µs",
            higher_is_better=False,
            reference=name,
        )
    return out


async def start_peer(
    group: Group, short: str, name: str, warmup: int, client: tuple[str, str] | None = None
) -> Proc:
    """Start a peer's server and a connected, warmed-up client of it.

    ``client`` is ``(module, role)`` of another client than the peer's own
    (``bench/sync_client.py``'s blocking stub).
    """
    impl = Impl(name, f"bench-{short}", module="bench.peers")
    server = await group.spawn(impl, f"{short}-server", {}, label=f"{name} server")
    ready = await server.ready()
    module, role = client or ("bench.peers", f"{short}-client")
    client_impl = Impl(name, f"bench-{short}", module=module)
    client_proc = await group.spawn(
        client_impl, role, {"port": ready["port"]}, label=f"{name} {role}"
    )
    await client_proc.ready(timeout=30.0)
    await client_proc.expect("added", timeout=15.0)
    await warm_up(client_proc, warmup)
    return client_proc


async def run(ctx: Context) -> list[Row]:
    """Measure coterie, pyzmq and grpc.aio in turn, at 100 and at 1 in flight."""
    p = ctx.params
    table = rows()
    if ctx.impl("coterie") is None:
        return []
    async with Group() as group:
        clients: dict[str, Proc] = {}
        await start_responders(group, COTERIE, 1)
        clients["coterie"] = await start_requester(group, COTERIE, 1, p.warmup)
        for name, short in PEERS.items():
            try:
                clients[name] = await start_peer(group, short, name, p.warmup)
            except BenchError as exc:
                ctx.notes.append(f"{name} left out: {exc} (pip install --group bench)")
        names = list(clients)
        for round_no in range(p.rounds):
            turn = round_no % len(names)
            for level, n in ((100, p.peers_n), (1, p.peers_seq_n)):
                for name in names[turn:] + names[:turn]:
                    result = await bench(
                        clients[name], n, level, timeout_ms=0, latencies=(level == 1)
                    )
                    if result["errors"]:
                        failed = result["errors"]
                        ctx.notes.append(f"{name}: {failed} of {n} requests failed at c={level}")
                    rate = (n - result["errors"]) / result["seconds"]
                    p50 = percentile([float(v) for v in result.get("latencies_us") or []], 50)
                    for peer, short in PEERS.items():
                        if name not in ("coterie", peer):
                            continue
                        side = "coterie" if name == "coterie" else peer
                        if level == 100:
                            table[f"peer_{short}_c100"].add(side, rate)
                        else:
                            table[f"peer_{short}_p50"].add(side, p50)
                    ctx.log(f"round {round_no + 1} {name:10} c={level:<3} {rate:9.0f} req/s")
    for name, short in PEERS.items():
        table[f"peer_{short}_c100"].note = (
            f"{name}: server and client processes on loopback, JSON in and out "
            "(bench/peers.py); coterie: its own pair in the same rounds"
        )
    return list(table.values())
