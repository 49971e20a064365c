"""``coterie monitor``: the command against real components, its table, --web, missing extras."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import signal
import socket
import sys
from typing import cast

import aiohttp
import pytest
from rich.console import Console

from coterie import Requester, Responder
from coterie.cli import monitor as monitor_cli
from coterie.cli.monitor import KEY_NOTE, parse_web_address, render_table
from coterie.components.monitor import MonitorSnapshot, NodeInfo
from tests.helpers import HOST_SCOPE, MS, DiscoveryFactory, free_port

STATUS = 100 * MS


def _env() -> dict[str, str]:
    return {**os.environ, "COTE_BROADCAST_ADDRESS": HOST_SCOPE, "COLUMNS": "200"}


def _cli_argv(disc_port: int, *args: str) -> list[str]:
    return ["-q", "monitor", "--discovery-port", str(disc_port), "--hello-interval", "100", *args]


async def _run(*argv: str, timeout: float = 20_000 * MS) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        *argv,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=_env(),
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


async def _run_cli(disc_port: int, *args: str) -> tuple[int, str, str]:
    return await _run("-m", "coterie", *_cli_argv(disc_port, *args))


def _without(module: str, disc_port: int, *args: str) -> list[str]:
    """``python -c`` argv running ``coterie monitor`` as if ``module`` were not installed."""
    code = (
        f"import sys; sys.modules[{module!r}] = None; "
        "from coterie.cli import main; sys.exit(main(sys.argv[1:]))"
    )
    return ["-c", code, *_cli_argv(disc_port, *args)]


async def test_once_json_shows_nodes_and_links(disc: DiscoveryFactory, disc_port: int) -> None:
    async with (
        Responder("time service", discovery=disc()) as rep,
        Requester("client", discovery=disc(), status_interval=STATUS) as req,
    ):
        await req.wait_connected(1, timeout=5000 * MS)
        code, out, err = await _run_cli(disc_port, "--once", "--json", "--duration", "1.5")
    assert code == 0, err
    snap = json.loads(out)
    nodes = {n["id"]: n for n in snap["nodes"]}
    assert nodes[rep.id]["role"] == "responder"
    assert nodes[rep.id]["port"] == rep.port
    assert nodes[req.id]["role"] == "requester"
    assert nodes[req.id]["connections"] == [rep.id]
    assert [req.id, rep.id] in snap["edges"]


async def test_live_table_runs_for_duration(disc: DiscoveryFactory, disc_port: int) -> None:
    async with Responder("time service", discovery=disc()) as rep:
        code, out, err = await _run_cli(disc_port, "--duration", "1", "--refresh", "0.2")
    assert code == 0, err
    assert "time service" in out and rep.id[:8] in out and "responder" in out


async def test_bad_arguments_exit_with_usage(disc_port: int) -> None:
    code, _, err = await _run_cli(disc_port, "--json")
    assert code == 2 and "--json needs --once" in err
    code, _, err = await _run_cli(disc_port, "--web", "--once")
    assert code == 2 and "--web serves a live page; it does not go with --once" in err
    code, _, err = await _run_cli(disc_port, "--web", "127.0.0.1:http")
    assert code == 2 and "the port must be a number" in err


# -- without the extras ---------------------------------------------------------


async def test_json_needs_no_rich(disc: DiscoveryFactory, disc_port: int) -> None:
    async with Responder("time service", discovery=disc()) as rep:
        code, out, err = await _run(
            *_without("rich", disc_port, "--once", "--json", "--duration", "1")
        )
    assert code == 0, err
    assert [n["id"] for n in json.loads(out)["nodes"]] == [rep.id]


@pytest.mark.parametrize("args", [("--once", "--duration", "0"), ("--duration", "0")])
async def test_table_without_rich_says_how_to_install_it(
    disc_port: int, args: tuple[str, ...]
) -> None:
    code, out, err = await _run(*_without("rich", disc_port, *args))
    assert code == 1 and out == ""
    assert err.splitlines() == [
        "coterie monitor: the table view needs rich, which is not installed; "
        "install it with: pip install 'coterie[cli]' (or use --once --json, or --web)"
    ]


async def test_web_without_aiohttp_says_how_to_install_it(disc_port: int) -> None:
    code, out, err = await _run(*_without("aiohttp", disc_port, "--web", "--duration", "0"))
    assert code == 1 and out == ""
    assert err.splitlines() == [
        "coterie monitor: --web needs aiohttp, which is not installed; "
        "install it with: pip install 'coterie[http]'"
    ]


# -- --web --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "address"),
    [
        ("5555", ("127.0.0.1", 5555)),
        ("0", ("127.0.0.1", 0)),
        ("127.0.0.1:8080", ("127.0.0.1", 8080)),
        ("localhost:80", ("localhost", 80)),
        ("0.0.0.0:5555", ("0.0.0.0", 5555)),
        ("[::1]:5555", ("::1", 5555)),
    ],
)
def test_parse_web_address(text: str, address: tuple[str, int]) -> None:
    assert parse_web_address(text) == address


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("", "the port must be a number"),
        ("host:", "the port must be a number"),
        (":5555", "the host before ':' is empty"),
        ("70000", "the port must be 0-65535"),
        ("::1:5555", "put an IPv6 host in brackets"),
    ],
)
def test_parse_web_address_errors(text: str, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        parse_web_address(text)


async def test_web_serves_the_mesh_until_interrupted(
    disc: DiscoveryFactory, disc_port: int
) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "coterie",
        *_cli_argv(disc_port, "--web", "127.0.0.1:0"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=_env(),
    )
    try:
        assert proc.stdout is not None and proc.stderr is not None
        async with asyncio.timeout(20_000 * MS):
            line = (await proc.stdout.readline()).decode()
        assert line.startswith("coterie monitor: serving http://127.0.0.1:"), line
        url = line.split()[3]
        async with Responder("time service", discovery=disc()) as rep, aiohttp.ClientSession() as s:
            async with asyncio.timeout(5000 * MS):
                while True:
                    async with s.get(url + "view.json") as resp:
                        nodes = (await resp.json())["nodes"]
                    if [n["id"] for n in nodes] == [rep.id]:
                        break
                    await asyncio.sleep(20 * MS)
            async with s.get(url) as resp:
                assert resp.status == 200 and "time service" in await resp.text()
        proc.send_signal(signal.SIGINT)
        async with asyncio.timeout(10_000 * MS):
            code = await proc.wait()
        assert code == 0, await proc.stderr.read()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_web_on_a_taken_port_or_a_bad_host_is_one_clear_line(disc_port: int) -> None:
    port = free_port()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        code, out, err = await _run_cli(disc_port, "--web", f"127.0.0.1:{port}")
        assert code == 1 and out == ""
        [line] = err.splitlines()
        prefix = f"coterie monitor: cannot serve on 127.0.0.1:{port}: Address already in use"
        hint = " (another monitor?); try --web 127.0.0.1:"
        assert line.startswith(prefix + hint), line
        suggested = int(line.removeprefix(prefix + hint).split(",")[0])
        assert line.endswith(f"127.0.0.1:{suggested}, free now, or --web 0")
        assert suggested > port
        with socket.socket() as sock:  # it was free, and is (no one else binds in the netns)
            sock.bind(("127.0.0.1", suggested))
    code, out, err = await _run_cli(disc_port, "--web", "no-such-host.invalid:0")
    assert code == 1 and out == ""
    [line] = err.splitlines()
    assert line.startswith("coterie monitor: cannot serve on no-such-host.invalid:0: ")


# -- the table --------------------------------------------------------------------


def _info(node_id: str, name: str, role: str, port: int | None, links: tuple[str, ...]) -> NodeInfo:
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


def test_render_table_lists_roles_and_links() -> None:
    snap = MonitorSnapshot(
        nodes={
            "r" * 36: _info("r" * 36, "time service", "responder", 8000, ()),
            "q" * 36: _info("q" * 36, "client", "requester", None, ("r" * 36,)),
            "p" * 36: _info("p" * 36, "prices", "publisher", 8001, ()),
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
    # The Key column's $$ is explained under the table.
    assert KEY_NOTE in " ".join(text.split())
    assert "ENVIRONMENT:$$KEY ($$ alone: no COTE_ENV and no key)" in KEY_NOTE


def test_render_table_shows_markup_in_names_as_written() -> None:
    node = _info("m" * 36, "[bold]x[/] [/oops]", "responder", 1, ())
    buf = io.StringIO()
    Console(file=buf, width=200).print(render_table(MonitorSnapshot(nodes={node.id: node})))
    assert "[bold]x[/] [/oops]" in buf.getvalue()


def test_logs_go_through_the_live_console_while_the_table_is_up() -> None:
    """Log lines written past rich's Live shifted the table and left old borders behind."""
    root = logging.getLogger()
    handler = logging.StreamHandler(sys.__stderr__)
    root.addHandler(handler)
    proxy = io.StringIO()
    try:
        with monitor_cli._logs_through(proxy):
            assert handler.stream is proxy
        assert handler.stream is cast(object, sys.__stderr__)
    finally:
        root.removeHandler(handler)
