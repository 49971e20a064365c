"""HTTP end to end: ``GET /pay/<cardno>`` through the mesh against through nginx.

Design: the seed example from ``examples/payment``, run as its user would
run it, each service its own process, driven by wrk:

- mesh: two ``validation_service.py`` responders and ``payment_service.py``,
  which validates over coterie;
- nginx: two ``validation_service.py --http`` services behind a real nginx
  whose configuration is the one ``coterie nginx`` renders (least_conn over
  both; static here, since discovery only changes it when services come or
  go), and ``payment_service.py --via nginx`` calling that nginx.

Both payment services are the same aiohttp program, so the difference is the
validation hop: coterie's framed TCP mesh against HTTP through nginx. Rounds
alternate which variant goes first. The reference column is nginx.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import shutil
import signal
import socket
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from bench.model import Context, Row
from bench.proc import ROOT, BenchError, worker_env

EXAMPLES = ROOT / "examples" / "payment"
CARD = "4111111111111111"
#: Discovery port of this scenario, apart from the other scenarios' components.
DISCOVERY_PORT = "12399"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Procs:
    """Example processes, all killed on exit."""

    def __init__(self) -> None:
        self.procs: list[asyncio.subprocess.Process] = []

    async def spawn(self, *argv: str) -> asyncio.subprocess.Process:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
            env=worker_env(),
            cwd=str(ROOT),
        )
        self.procs.append(proc)
        return proc

    async def close(self) -> None:
        for proc in self.procs:
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                async with asyncio.timeout(5.0):
                    await proc.wait()
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=2.0) as response:
            return int(response.status), response.read().decode(errors="replace")
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read().decode(errors="replace")
    except OSError as exc:
        return 0, str(exc)


async def _wait_validated(url: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        status, body = await asyncio.to_thread(_get, url)
        if status == 200 and "validated" in body:
            return
        if time.monotonic() > deadline:
            raise BenchError(f"{url} did not answer 'validated' in {timeout:.0f}s: {status} {body}")
        await asyncio.sleep(0.1)


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


async def wrk(url: str, seconds: int, connections: int) -> tuple[float, float, int]:
    """Run wrk; return (requests/s, p50 latency in ms, non-2xx responses)."""
    proc = await asyncio.create_subprocess_exec(
        "wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", url,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    try:
        async with asyncio.timeout(seconds + 30):
            out, _ = await proc.communicate()
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise BenchError("wrk did not finish") from None
    text = out.decode(errors="replace")
    rate = re.search(r"Requests/sec:\s+([\d.]+)", text)
    p50 = re.search(r"^\s+50%\s+([\d.]+)(us|ms|s)\s*$", text, re.M)
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    if rate is None or p50 is None:
        raise BenchError(f"could not read wrk's output: {text[-300:]}")
    return (
        float(rate.group(1)),
        float(p50.group(1)) * _UNITS[p50.group(2)],
        int(bad.group(1)) if bad else 0,
    )


async def _mesh(ctx: Context, procs: _Procs) -> str:
    py = sys.executable
    disc = ["--discovery-port", DISCOVERY_PORT]
    if ctx.params.smoke:
        disc += ["--hello-interval", "200"]
    for i in (1, 2):
        await procs.spawn(py, str(EXAMPLES / "validation_service.py"), "--id", f"v{i}", *disc)
    port = _free_port()
    await procs.spawn(
        py, str(EXAMPLES / "payment_service.py"), "--port", str(port), "--timeout", "10", *disc
    )
    url = f"http://127.0.0.1:{port}/pay/{CARD}"
    await _wait_validated(url)
    return url


async def _nginx(ctx: Context, procs: _Procs, prefix: Path) -> tuple[str, object]:
    from coterie.gateways.nginx import NginxServer, Server, render_config

    py = sys.executable
    ports = [_free_port(), _free_port()]
    for i, port in enumerate(ports, 1):
        await procs.spawn(
            py, str(EXAMPLES / "validation_service.py"), "--id", f"h{i}", "--http", str(port)
        )
    listen = ("127.0.0.1", _free_port())
    nginx = NginxServer(prefix)
    config = render_config(
        "validation-service",
        [Server("127.0.0.1", p) for p in ports],
        listen=listen,
        prefix=nginx.prefix,
    )
    await nginx.start(config, listen)
    port = _free_port()
    await procs.spawn(
        py, str(EXAMPLES / "payment_service.py"), "--via", "nginx", "--port", str(port),
        "--timeout", "10", "--validation-url", f"http://{listen[0]}:{listen[1]}",
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}/pay/{CARD}"
    await _wait_validated(url)
    return url, nginx


async def _measure(ctx: Context, variant: str) -> tuple[float, float, int]:
    p = ctx.params
    procs = _Procs()
    nginx = None
    began = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="coterie-bench-nginx-") as tmp:
        try:
            if variant == "mesh":
                url = await _mesh(ctx, procs)
            else:
                url, nginx = await _nginx(ctx, procs, Path(tmp))
            ready = time.monotonic()
            if not p.smoke:
                await wrk(url, 1, p.http_connections)  # warm-up
            result = await wrk(url, p.http_seconds, p.http_connections)
            ctx.log(f"{variant}: up in {ready - began:.1f} s")
            return result
        finally:
            if nginx is not None:
                await nginx.stop()  # type: ignore[attr-defined]
            closing = time.monotonic()
            await procs.close()
            ctx.log(f"{variant}: stopped in {time.monotonic() - closing:.1f} s")


async def run(ctx: Context) -> list[Row]:
    """Measure /pay throughput and latency through the mesh and through nginx."""
    rate = Row(
        "http_pay",
        "HTTP GET /pay/<cardno> throughput (mesh vs nginx)",
        "req/s",
        higher_is_better=True,
        reference="nginx",
        target=">= nginx",
        check=lambda ours, theirs: None if theirs is None else ours >= theirs,
    )
    latency = Row(
        "http_pay_p50",
        "HTTP GET /pay/<cardno> latency p50 (mesh vs nginx)",
        "ms",
        higher_is_better=False,
        reference="nginx",
    )
    rows = [rate, latency]
    if not (EXAMPLES / "payment_service.py").exists():
        ctx.notes.append("http: skipped: examples/payment does not exist yet")
        rate.note = "examples/payment not available in this build"
        return rows
    if shutil.which("wrk") is None:
        ctx.notes.append("http: skipped: wrk is not installed (apt-get install wrk)")
        return rows
    try:
        from coterie.gateways.nginx import find_nginx
    except ImportError:
        find_nginx = None  # type: ignore[assignment]
    variants = ["mesh"]
    if find_nginx is not None and find_nginx() is not None:
        variants.append("nginx")
    else:
        ctx.notes.append("http: nginx variant skipped: nginx is not installed")
    rounds = 1 if ctx.params.smoke else 2
    for round_no in range(rounds):
        order = variants if round_no % 2 == 0 else list(reversed(variants))
        for variant in order:
            rps, p50, bad = await _measure(ctx, variant)
            who = "coterie" if variant == "mesh" else "nginx"
            rate.add(who, rps)
            latency.add(who, p50)
            if bad:
                ctx.notes.append(f"http: {variant}: {bad} responses were not 2xx")
            ctx.log(f"round {round_no + 1} {variant:7} /pay {rps:8.0f} req/s, p50 {p50:.2f} ms")
    rate.note = (
        f"wrk -t1 -c{ctx.params.http_connections} -d{ctx.params.http_seconds}s; two validators "
        "each way; nginx config as rendered by `coterie nginx` (least_conn)"
    )
    return rows
