"""The demo leaves no process and no listening port behind, however it ends.

Three endings, each from the moment the demo waits for Ctrl-C (``--no-tour``):

- Ctrl-C with the output piped through ``tee``: SIGINT to the whole process
  group, as a terminal sends it, so ``tee`` dies too and the demo's next print
  finds a closed pipe (this once left 10 processes holding 3000, 3003, 8080);
- the reader of its output goes away (``make demo | head``);
- SIGKILL of the demo itself.

Before the ending, the test notes every process below the demo and every
port they listen on (from /proc); after it, every one of those processes must
be gone and no one of those ports may listen, within a bound.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.support import (
    NGINX,
    ROOT,
    demo_argv,
    demo_env,
    read_until_ready,
    started,
    workdirs,
)

# -- /proc ------------------------------------------------------------------------


def _stat(pid: int) -> tuple[str, int] | None:
    """``(state, ppid)`` of a process, or None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return fields[0], int(fields[1])


def _alive(pid: int) -> bool:
    stat = _stat(pid)
    return stat is not None and stat[0] not in ("Z", "X")  # a zombie has exited


def _descendants(root: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (stat := _stat(int(entry))) is not None:
            children.setdefault(stat[1], []).append(int(entry))
    found: set[int] = set()
    todo = [root]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def _listening() -> dict[int, int]:
    """``{socket inode: port}`` of every listening TCP socket in this network namespace."""
    found: dict[int, int] = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(FileNotFoundError), open(table) as f:
            for line in f.readlines()[1:]:
                fields = line.split()
                if fields[3] == "0A":  # TCP_LISTEN
                    found[int(fields[9])] = int(fields[1].rsplit(":", 1)[1], 16)
    return found


def _ports_of(pids: set[int]) -> set[int]:
    """The ports the processes ``pids`` listen on."""
    listening = _listening()
    ports: set[int] = set()
    for pid in pids:
        with contextlib.suppress(OSError):
            for fd in os.listdir(f"/proc/{pid}/fd"):
                with contextlib.suppress(OSError):
                    target = os.readlink(f"/proc/{pid}/fd/{fd}")
                    if target.startswith("socket:["):
                        inode = int(target[8:-1])
                        if inode in listening:
                            ports.add(listening[inode])
    return ports


def _describe(pids: set[int]) -> str:
    lines = []
    for pid in sorted(pids):
        with contextlib.suppress(OSError):
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            lines.append(f"  {pid} {(_stat(pid) or ('?',))[0]} {cmd[:150]}")
    return "\n".join(lines)


# -- the demo ---------------------------------------------------------------------


def _demo_argv(tmp_path: Path) -> list[str]:
    argv = demo_argv("--no-tour")
    return argv if NGINX is not None else [*argv, "--no-nginx"]


def _snapshot(root: int, expect: int, noted: set[int]) -> tuple[set[int], set[int]]:
    """The processes below ``root`` and their listening ports, once ``expect`` listen.

    The processes are added to ``noted``, which the test's teardown kills.
    """
    deadline = time.monotonic() + 15
    while True:
        pids = _descendants(root)
        noted |= pids
        ports = _ports_of(pids)
        if len(ports) >= expect:
            return pids, ports
        assert time.monotonic() < deadline, f"only {ports} listen:\n{_describe(pids)}"
        time.sleep(0.1)


def _assert_nothing_left(pids: set[int], ports: set[int], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while True:
        alive = {pid for pid in pids if _alive(pid)}
        still = ports & set(_listening().values())
        if not alive and not still:
            return
        if time.monotonic() > deadline:
            raise AssertionError(
                f"left behind: ports {sorted(still)} listening, processes:\n{_describe(alive)}"
            )
        time.sleep(0.1)


def _expected_ports() -> int:
    """Ports listening once the demo is ready.

    Payment services (2), nginx, the HTTP validators (2) and the mesh
    validators' responder ports (2); requesters listen on none.
    """
    return 3 if NGINX is None else 7


@pytest.fixture
def noted() -> Iterator[set[int]]:
    """Processes a test saw below the demo; any still alive at teardown are killed."""
    pids: set[int] = set()
    yield pids
    for pid in pids:
        if _alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def test_ctrl_c_with_the_output_piped_through_tee_leaves_nothing(
    tmp_path: Path, noted: set[int]
) -> None:
    log = tmp_path / "demo.log"
    command = f"{shlex.join(_demo_argv(tmp_path))} 2>&1 | tee {shlex.quote(str(log))}"
    with started(["bash", "-c", command]) as shell:
        assert shell.stdout is not None
        read_until_ready(shell.stdout)
        pids, ports = _snapshot(shell.pid, _expected_ports(), noted)
        demo = next(p for p in pids if b"examples.payment.demo" in _cmdline(p))
        os.killpg(shell.pid, signal.SIGINT)  # Ctrl-C: the demo, tee and the shell
        shell.wait(timeout=30)
        _assert_nothing_left(pids, ports)
    assert not _alive(demo)
    assert "stopped every process of the demo" not in log.read_text()  # tee died first


def test_a_closed_output_pipe_stops_the_demo_and_leaves_nothing(
    tmp_path: Path, noted: set[int]
) -> None:
    with started(_demo_argv(tmp_path), tmp_path) as demo:
        assert demo.stdout is not None
        output = read_until_ready(demo.stdout)
        pids, ports = _snapshot(demo.pid, _expected_ports(), noted)
        _the_hint_works_in_a_new_shell(output)
        demo.stdout.close()  # `make demo | head`: the reader is gone
        assert demo.wait(timeout=30) == 0
        _assert_nothing_left(pids, ports)
    assert workdirs(tmp_path) == []  # its temporary directory too


def test_sigkill_of_the_demo_leaves_nothing(tmp_path: Path, noted: set[int]) -> None:
    with started(_demo_argv(tmp_path), tmp_path) as demo:
        assert demo.stdout is not None
        read_until_ready(demo.stdout)
        pids, ports = _snapshot(demo.pid, _expected_ports(), noted)
        demo.kill()
        assert demo.wait(timeout=10) == -signal.SIGKILL
        _assert_nothing_left(pids, ports)
    # Its temporary directory is left (a killed process cleans nothing); the
    # next demo removes it, even one that stops at once on a taken port.
    (left,) = workdirs(tmp_path)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        argv = demo_argv("--no-nginx", "--mesh-port", str(taken.getsockname()[1]))
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=60, cwd=ROOT, env=demo_env(tmp_path)
        )
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"removed what killed demos left: {left}" in done.stdout
    assert workdirs(tmp_path) == []


def _the_hint_works_in_a_new_shell(output: str) -> None:
    """The demo's "one more mesh validator" command runs with no venv activated."""
    (watch,) = [line for line in output.splitlines() if "watch this demo's mesh" in line]
    assert " -m coterie monitor --web --environment demo-" in watch  # its components report
    (hint,) = [line for line in output.splitlines() if "one more mesh validator" in line]
    command = hint.split("#")[0].strip()
    argv = shlex.split(command)
    assert argv[0].startswith("COTE_ENV=demo-"), hint  # joins this demo's mesh, no other
    assert argv[2] == "examples/payment/validation_service.py", hint
    assert "--discovery-port" in argv, hint  # meets the demo's nodes
    # A new shell: no VIRTUAL_ENV, no venv on PATH, no PYTHONPATH.
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": os.environ.get("HOME", "/")}
    done = subprocess.run(
        ["bash", "-c", f"{command} --help"],
        capture_output=True, text=True, timeout=60, cwd=ROOT, env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "usage: validation_service.py" in done.stdout


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


@pytest.fixture(autouse=True)
def _linux_only() -> None:
    if not Path("/proc/self/stat").exists():
        pytest.skip("reads /proc")
