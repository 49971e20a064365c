"""`make demo` (`python -m examples.payment.demo --no-wait`): the whole tour, on private ports."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import pytest

from tests.e2e.support import ROOT, demo_argv, demo_env, needs_nginx, workdirs


def _demo(tmp: Path, *extra: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    argv = demo_argv("--no-wait", "--pause", "0.5", *extra)
    return subprocess.run(
        argv, capture_output=True, text=True, timeout=timeout, cwd=ROOT, env=demo_env(tmp)
    )


@needs_nginx
@pytest.mark.nginx
def test_the_demo_tells_the_story_both_ways(tmp_path: Path) -> None:
    result = _demo(tmp_path)
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert "mesh: mesh-validator-1 x3, mesh-validator-2 x3" in out
    assert "nginx: http-validator-1 x3, http-validator-2 x3" in out
    assert "validation failed: 502 Bad Gateway from nginx" in out
    assert "mesh:  3 of 3 payments sent while no validator ran completed" in out
    assert "validation failed: failed the Luhn check" in out
    assert "->  500" not in out
    assert "stopped every process of the demo" in out
    assert workdirs(tmp_path) == []  # its logs and nginx prefix went with it


def test_without_nginx_the_demo_runs_the_mesh_half_and_says_how_to_get_the_other(
    tmp_path: Path,
) -> None:
    result = _demo(tmp_path, "--nginx", "/no/such/nginx", "--no-tour")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "nginx half skipped (nginx was not found)" in result.stdout
    assert "apt-get install nginx-light" in result.stdout
    assert "payment-mesh-1" in result.stdout
    assert "payment-nginx" not in result.stdout


def test_a_taken_port_is_named(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        result = _demo(tmp_path, "--no-nginx", "--mesh-port", str(port))
    assert result.returncode == 1
    assert f"port {port} is taken" in result.stdout
    assert workdirs(tmp_path) == []
