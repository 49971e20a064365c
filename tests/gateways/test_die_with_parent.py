"""die_with_parent: a child started with it gets SIGTERM when its parent dies, even by SIGKILL."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from coterie.gateways.process import die_with_parent
from tests.e2e.support import free_port, needs_nginx

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux only"
)

#: A parent that starts a sleeping grandchild with (or without) die_with_parent,
#: prints the grandchild's pid, then waits to be killed.
PARENT = """
import subprocess, sys, time
from coterie.gateways.process import die_with_parent
argv = [sys.executable, "-c", "import time; time.sleep(60)"]
child = subprocess.Popen(die_with_parent(argv) if sys.argv[1] == "yes" else argv)
print(child.pid, flush=True)
time.sleep(60)
"""


def _gone(pid: int) -> bool:
    """Whether ``pid`` has exited (a zombie waiting for its reaper counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except FileNotFoundError:
        return True


def _run_parent(use: str) -> tuple[subprocess.Popen[str], int]:
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT, use], stdout=subprocess.PIPE, text=True
    )
    assert parent.stdout is not None
    line = parent.stdout.readline()
    assert line, "the parent did not start its child"
    return parent, int(line)


def test_the_child_dies_when_its_parent_is_killed() -> None:
    parent, child = _run_parent("yes")
    assert not _gone(child)
    parent.send_signal(signal.SIGKILL)
    parent.wait(timeout=10)
    deadline = time.monotonic() + 10
    while not _gone(child):
        assert time.monotonic() < deadline, f"child {child} outlived its killed parent"
        time.sleep(0.02)


def test_without_it_the_child_outlives_its_parent() -> None:
    # The control: what the demo's children did before.
    parent, child = _run_parent("no")
    try:
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=10)
        time.sleep(0.3)
        assert not _gone(child)
    finally:
        if not _gone(child):
            os.kill(child, signal.SIGKILL)


def test_the_command_runs_in_place_with_its_arguments() -> None:
    # The trampoline execs the command: the child's pid is the command's.
    argv = [sys.executable, "-c", "import os, sys; print(os.getpid(), sys.argv[1:])", "a b", "-c"]
    child = subprocess.Popen(die_with_parent(argv), stdout=subprocess.PIPE, text=True)
    out, _ = child.communicate(timeout=10)
    assert child.returncode == 0
    assert out == f"{child.pid} ['a b', '-c']\n"


def test_a_missing_command_fails_in_the_parent() -> None:
    with pytest.raises(FileNotFoundError, match="no-such-command-here"):
        die_with_parent(["no-such-command-here"])
    with pytest.raises(ValueError, match="empty argv"):
        die_with_parent([])


def _descendants(pid: int) -> set[int]:
    """Every process below ``pid`` right now, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (FileNotFoundError, ProcessLookupError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def _kill_and_check_the_tree_dies(argv: list[str], expect: int) -> None:
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    tree: set[int] = set()
    try:
        deadline = time.monotonic() + 15
        while len(tree) < expect:
            assert time.monotonic() < deadline, f"only {tree} started below {argv}"
            assert proc.poll() is None
            time.sleep(0.05)
            tree = _descendants(proc.pid)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        deadline = time.monotonic() + 10
        while not all(_gone(pid) for pid in tree):
            assert time.monotonic() < deadline, f"{tree} outlived {argv[:4]} killed by SIGKILL"
            time.sleep(0.05)
    finally:
        for pid in tree:
            if not _gone(pid):
                os.kill(pid, signal.SIGKILL)


def test_coterie_announce_killed_takes_its_command_along() -> None:
    _kill_and_check_the_tree_dies(
        [
            sys.executable,
            "-m",
            "coterie",
            "-q",
            "announce",
            "--name",
            "x",
            "--port",
            "1",
            "--",
            sys.executable,
            "-c",
            "import time; time.sleep(60)",
        ],
        expect=1,
    )


@needs_nginx
@pytest.mark.nginx
def test_coterie_nginx_killed_takes_nginx_and_its_worker_along(tmp_path: Path) -> None:
    # nginx's master, then its worker: both must go, and the port with them.
    port = free_port()
    _kill_and_check_the_tree_dies(
        [
            sys.executable,
            "-m",
            "coterie",
            "-q",
            "nginx",
            "--service",
            "s",
            "--listen",
            str(port),
            "--prefix",
            str(tmp_path),
        ],
        expect=2,
    )
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))  # nobody listens there any more
