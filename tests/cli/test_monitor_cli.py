"""``coterie monitor``: the command against real components, and its table."""

from __future__ import annotations

import asyncio
import io
import json
import os
import sys

from rich.console import Console

from coterie import DiscoveryOptions, Requester, Responder
from coterie.cli.monitor import render_table
from coterie.components.monitor import MonitorSnapshot, NodeInfo

PORT = 39000 + os.getpid() % 500


def _discovery() -> DiscoveryOptions:
    return DiscoveryOptions(
        port=PORT,
        broadcast="127.255.255.255",
        hello_interval=100,
        check_interval=200,
        node_timeout=400,
        master_timeout=500,
        log=False,
    )


async def _run_cli(*args: str, timeout: float = 20.0) -> tuple[int, str, str]:
    env = {**os.environ, "COTE_BROADCAST_ADDRESS": "127.255.255.255", "COLUMNS": "200"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "coterie",
        "-q",
        "monitor",
        "--discovery-port",
        str(PORT),
        "--hello-interval",
        "100",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    try:
        async with asyncio.timeout(timeout):
            out, err = await proc.communicate()
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_once_json_shows_nodes_and_links() -> None:
    async with (
        Responder("time service", discovery=_discovery()) as rep,
        Requester("client", discovery=_discovery(), status_interval=0.1) as req,
    ):
        await req.wait_connected(1, timeout=5)
        code, out, err = await _run_cli("--once", "--json", "--duration", "1.5")
    assert code == 0, err
    snap = json.loads(out)
    nodes = {n["id"]: n for n in snap["nodes"]}
    assert nodes[rep.id]["role"] == "responder"
    assert nodes[rep.id]["port"] == rep.port
    assert nodes[req.id]["role"] == "requester"
    assert nodes[req.id]["connections"] == [rep.id]
    assert [req.id, rep.id] in snap["edges"]


async def test_live_table_runs_for_duration() -> None:
    async with Responder("time service", discovery=_discovery()) as rep:
        code, out, err = await _run_cli("--duration", "1", "--refresh", "0.2")
    assert code == 0, err
    assert "time service" in out and rep.id[:8] in out and "responder" in out


async def test_bad_arguments_exit_with_usage() -> None:
    code, _, err = await _run_cli("--json")
    assert code == 2 and "--json needs --once" in err


def test_render_table_lists_roles_and_links() -> None:
    def info(
        node_id: str, name: str, role: str, port: int | None, links: tuple[str, ...]
    ) -> NodeInfo:
        return NodeInfo(
            id=node_id,
            name=name,
            role=role,
            address="127.0.0.1",
            port=port,
            host_name="h",
            process_id="p",
            key="$$",
            namespace="shop" if role == "publisher" else None,
            advertisement={},
            connections=links,
        )

    snap = MonitorSnapshot(
        nodes={
            "r" * 36: info("r" * 36, "time service", "responder", 8000, ()),
            "q" * 36: info("q" * 36, "client", "requester", None, ("r" * 36,)),
            "p" * 36: info("p" * 36, "prices", "publisher", 8001, ()),
        },
        connections={"q" * 36: ("r" * 36,)},
    )
    buf = io.StringIO()
    Console(file=buf, width=200).print(render_table(snap))
    text = buf.getvalue()
    assert "3 node(s), 1 link(s)" in text
    lines = {line.split("│")[1].strip(): line for line in text.splitlines() if "│" in line}
    assert "time service (rrrrrrrr)" in lines["client"]
    assert "8000" in lines["time service"]
    assert "shop" in lines["prices"]
    # Rows are grouped by role: responders, then requesters, then publishers.
    assert list(lines) == ["time service", "client", "prices"]
