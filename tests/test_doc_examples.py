"""Every Python example in the docs and docstrings runs, as its reader would run it.

The examples are found, not listed by hand: every ```python block of the
README and docs/*.md, and every ``::`` literal block of a docstring in
``src/coterie`` and ``examples/`` that compiles as Python (shell commands and
diagrams do not). Each one must have a way to run in :data:`RUNS`, keyed by
file and its place among that file's Python examples, so a new example
without a test fails :func:`test_every_example_has_a_run`.

The README's first two are run by ``tests/test_readme.py`` and the testbed's
by ``tests/multihost/test_doc_example.py`` (it needs the bed).
"""

from __future__ import annotations

import ast
import asyncio
import os
import re
import signal
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from coterie.gateways.sockend import Sockend
from tests.helpers import MS

ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "COTE_BROADCAST_ADDRESS": "127.255.255.255", "PYTHONUNBUFFERED": "1"}


def _markdown_examples(doc: Path) -> list[str]:
    blocks = re.findall(r"^ *```python\n(.*?)^ *```", doc.read_text(), flags=re.S | re.M)
    return [textwrap.dedent(block) for block in blocks]


def _literal_blocks(doc: str) -> Iterator[str]:
    """The ``::`` literal blocks of a reST docstring."""
    lines = doc.splitlines()
    for i, line in enumerate(lines):
        if not line.rstrip().endswith("::"):
            continue
        block: list[str] = []
        for following in lines[i + 1 :]:
            if following.strip() and not following.startswith((" ", "\t")):
                break
            block.append(following)
        text = textwrap.dedent("\n".join(block)).strip("\n")
        if text:
            yield text + "\n"


def _is_python(code: str) -> bool:
    try:
        compile(code, "<example>", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    except SyntaxError:
        return False
    return True


def _docstring_examples(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            doc = ast.get_docstring(node)
            if doc:
                found += [b for b in _literal_blocks(doc) if _is_python(b)]
    return found


def examples() -> dict[str, str]:
    """``{"<file>#<n>": code}`` for every Python example."""
    found: dict[str, str] = {}
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for n, code in enumerate(_markdown_examples(doc), 1):
            found[f"{doc.relative_to(ROOT)}#{n}"] = code
    for path in sorted([*(ROOT / "src").rglob("*.py"), *(ROOT / "examples").rglob("*.py")]):
        for n, code in enumerate(_docstring_examples(path), 1):
            found[f"{path.relative_to(ROOT)}#{n}"] = code
    return found


@dataclass(frozen=True)
class Run:
    """How an example runs.

    ``kind``: ``script`` (runs to exit 0 and prints ``prints``), ``server``
    (serves until stopped: it must answer ``GET url`` with 200 first),
    ``pytest`` (a test file that must pass), ``fragment`` (runs in a
    namespace this module gives it) or ``elsewhere`` (another test runs it).
    ``prelude`` comes before the example's code; an example with a
    top-level ``await`` runs inside ``async def main()``.
    """

    kind: str
    prints: str = ""
    url: str = ""
    prelude: str = ""


RUNS: dict[str, Run] = {
    "README.md#1": Run("elsewhere"),  # tests/test_readme.py
    "README.md#2": Run("elsewhere"),  # tests/test_readme.py, under pytest
    "README.md#3": Run("script"),
    "README.md#4": Run("script", prints="True\ninvalid $.cardno: expected str, got int"),
    "README.md#5": Run("fragment"),  # test_the_sync_examples_call_a_responder
    "docs/messaging.md#1": Run("script", prints="[0, 1, 2, 3] [0, 1, 2, 3]"),
    "docs/messaging.md#2": Run(
        "script", prelude='from coterie import Responder\nresponder = Responder("payments")\n'
    ),
    "docs/metrics.md#1": Run("script", prints="0"),
    "docs/production.md#1": Run("script", prelude="from coterie import Responder\n"),
    "docs/monitor.md#1": Run("server", prints="open http://127.0.0.1:5555/", url="/"),
    "docs/sockend.md#1": Run("server", url="/socket.io/?EIO=4&transport=polling"),
    "docs/sockend.md#2": Run("fragment"),
    "docs/sync.md#1": Run("fragment"),  # test_the_sync_examples_call_a_responder
    "docs/sync.md#2": Run("script", prints="rate {'eur': 1.08}"),
    "docs/testbed.md#1": Run("elsewhere"),
    "docs/typed.md#1": Run(
        "script",
        prints="Receipt(amount=12, by='pay')\ninvalid $.amount: input should be a valid integer, "
        "unable to parse string as an integer, got str",
    ),  # tests/multihost/test_doc_example.py
    "src/coterie/__init__.py#1": Run("script", prints="True"),
    "src/coterie/sync/__init__.py#1": Run("fragment"),
    "src/coterie/testing/__init__.py#1": Run("pytest"),
    "src/coterie/web/server.py#1": Run(
        "server",
        prints="open http://127.0.0.1:5555/",
        url="/",
        prelude=(
            "import asyncio\nfrom coterie import Monitor\nfrom coterie.web import MonitorServer\n"
        ),
    ),
}

FOUND = examples()


def test_every_example_has_a_run() -> None:
    assert sorted(FOUND) == sorted(RUNS), "give each new example a Run in RUNS"


def _program(key: str) -> str:
    code, run = FOUND[key], RUNS[key]
    try:
        compile(code, key, "exec")
    except SyntaxError:  # top-level await: the body of a coroutine
        code = (
            "async def main() -> None:\n"
            + textwrap.indent(code, "    ")
            + "\n\nasyncio.run(main())\n"
        )
    return run.prelude + code


def _keys(kind: str) -> list[str]:
    return [k for k, run in RUNS.items() if run.kind == kind]


@pytest.mark.parametrize("key", _keys("script"))
async def test_script_examples_run(key: str, tmp_path: Path) -> None:
    (tmp_path / "example.py").write_text(_program(key))
    process = await asyncio.create_subprocess_exec(
        sys.executable, "example.py", cwd=tmp_path, env=ENV,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0, err.decode()
    assert out.decode().strip() == RUNS[key].prints


async def _accepts(port: int) -> bool:
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return False
    writer.close()
    return True


@pytest.mark.parametrize("key", _keys("server"))
async def test_server_examples_serve(key: str, tmp_path: Path) -> None:
    run = RUNS[key]
    (tmp_path / "example.py").write_text(_program(key))
    process = await asyncio.create_subprocess_exec(
        sys.executable, "example.py", cwd=tmp_path, env=ENV,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    assert process.stdout is not None
    try:
        async with asyncio.timeout(15):
            if run.prints:
                line = await process.stdout.readline()
                assert line.decode().strip() == run.prints
            while not await _accepts(5555):
                assert process.returncode is None, await process.stdout.read()
                await asyncio.sleep(20 * MS)
            url = f"http://127.0.0.1:5555{run.url}"
            async with aiohttp.ClientSession() as session, session.get(url) as response:
                assert response.status == 200
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGINT)
        await asyncio.wait_for(process.wait(), 10)


@pytest.mark.parametrize("key", _keys("pytest"))
async def test_test_examples_pass_under_pytest(key: str, tmp_path: Path) -> None:
    (tmp_path / "test_example.py").write_text(_program(key))
    (tmp_path / "pytest.ini").write_text(
        "[pytest]\nasyncio_default_fixture_loop_scope = function\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COTE_", "COTERIE_"))}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-W", "error",
        "test_example.py", cwd=tmp_path, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, out.decode()
    assert "1 passed" in out.decode()


def test_the_sockend_room_example_registers_its_connect_handler() -> None:
    sockend = Sockend(name="web gateway")
    exec(_program("docs/sockend.md#2"), {"sockend": sockend})
    assert "connect" in sockend.io.handlers["/"]


async def test_the_sync_examples_call_a_responder(capsys: pytest.CaptureFixture[str]) -> None:
    import coterie

    card = "4111111111111111"
    async with coterie.Responder("validation service") as responder:
        responder.on("validate", lambda req: req["cardno"] == card)

        # coterie.sync's docstring: a function any thread may call.
        namespace: dict[str, Any] = {}
        exec(_program("src/coterie/sync/__init__.py#1"), namespace)
        try:
            assert await asyncio.to_thread(namespace["card_is_valid"], card)
            assert not await asyncio.to_thread(namespace["card_is_valid"], card[:-1] + "2")
        finally:
            await asyncio.to_thread(namespace["requester"].close)

        # The README's: a with block that prints the answer.
        await asyncio.to_thread(exec, _program("README.md#5"), {})
        assert capsys.readouterr().out == "True\n"

        # docs/sync.md's Flask app, through Flask's test client.
        flask_app: dict[str, Any] = {"__name__": "__main__"}  # as run by gunicorn or flask
        exec(_program("docs/sync.md#1"), flask_app)
        client = flask_app["app"].test_client()
        try:
            answer = await asyncio.to_thread(client.get, f"/pay/{card}")
            assert answer.get_json() == {"valid": True}
        finally:
            await asyncio.to_thread(flask_app["requester"].close)
