"""Two demos at once on one host, one discovery port: each keeps its own mesh.

The first waits for Ctrl-C with every validator up; the second tours. Had
the second joined the first one's mesh (as it did before each run got its
own ``COTE_ENV``), its tour would contradict itself: with its own validators
stopped, its mesh payments would be answered by the first demo's validators
and its nginx would route to the first demo's HTTP validators (200, not 502).
A taken port names every port to change, and ``make demo ARGS=...`` passes
options through.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
from pathlib import Path

from tests.e2e.support import (
    NGINX,
    ROOT,
    demo_argv,
    demo_env,
    free_port,
    read_until_ready,
    started,
    workdirs,
)


def _nginx_half() -> list[str]:
    return [] if NGINX is not None else ["--no-nginx"]


def test_a_second_demo_keeps_its_own_mesh_and_tells_its_own_story(tmp_path: Path) -> None:
    discovery = ["--discovery-port", str(free_port(socket.SOCK_DGRAM))]  # shared by both
    first_argv = demo_argv("--no-tour", *_nginx_half(), *discovery)
    with started(first_argv, tmp_path) as first:
        assert first.stdout is not None
        first_out = read_until_ready(first.stdout)
        second = subprocess.run(
            demo_argv("--no-wait", "--pause", "0.5", *_nginx_half(), *discovery),
            capture_output=True, text=True, timeout=120, cwd=ROOT,
            env=demo_env(tmp_path),
        )  # fmt: skip
        out = second.stdout
        assert second.returncode == 0, out + second.stderr
        mesh_port = first_argv[first_argv.index("--mesh-port") + 1]
        assert f"environment demo-{mesh_port} (COTE_ENV)" in first_out
        # Its own validators stopped: nothing of the first demo answers for it.
        assert "after 0.5 s: 3 mesh payment(s) still waiting, none failed" in out
        assert "mesh:  3 of 3 payments sent while no validator ran completed" in out
        if NGINX is not None:
            assert "validation failed: 502 Bad Gateway from nginx" in out, out
            assert "started mesh-validator-3 and http-validator-3" in out
            assert (
                "validators serving now: http-validator-3, http-validator-4, "
                "mesh-validator-3, mesh-validator-4"
            ) in out
        else:
            assert "started mesh-validator-3\n" in out
            assert "validators serving now: mesh-validator-3, mesh-validator-4" in out
        os.killpg(first.pid, signal.SIGINT)
        assert first.wait(timeout=30) == 0
    assert workdirs(tmp_path) == []


def test_a_taken_port_names_every_port_to_change_and_make_demo_passes_args(
    tmp_path: Path,
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        argv = demo_argv("--no-wait", "--mesh-port", str(port))[3:]  # the options only
        done = subprocess.run(
            ["make", "--no-print-directory", "-o", ".venv/.coterie-installed", "demo",
             f"ARGS={' '.join(argv)}"],
            capture_output=True, text=True, timeout=60, cwd=ROOT, env=demo_env(tmp_path),
        )  # fmt: skip
    assert done.returncode != 0
    out = " ".join(done.stdout.split())  # rich wraps long lines
    assert f"port {port} is taken; free it or choose another with --mesh-port" in out
    hint = out.split('run this one on free ports: make demo ARGS="', 1)[1].split('"', 1)[0]
    options = hint.split()
    flags = ["--mesh-port", "--nginx-payment-port", "--nginx-port"] if NGINX else ["--mesh-port"]
    assert options[::2] == flags, hint
    assert int(options[1]) != port
    assert len({*options[1::2]}) == len(flags)
