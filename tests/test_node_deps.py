"""scripts/node-deps.sh: `make setup` goes on, with a warning, when `npm ci` cannot run."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "node-deps.sh"
SKIPS = "the interop tests (real Node cote) will skip; the demo and the rest need no Node."


def _run(directory: Path, path: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {"PATH": path} if path is not None else None
    return subprocess.run(
        ["/bin/bash", str(SCRIPT), str(directory)],
        capture_output=True, text=True, timeout=120, env=env,
    )  # fmt: skip


@pytest.mark.skipif(shutil.which("npm") is None, reason="npm is not installed")
def test_a_failing_npm_ci_warns_that_interop_skips_and_exits_zero(tmp_path: Path) -> None:
    # A real npm ci failure: a package.json without its package-lock.json.
    (tmp_path / "package.json").write_text('{"name": "x", "version": "1.0.0"}')
    done = _run(tmp_path)
    assert done.returncode == 0, done.stderr
    assert f"node-deps: `npm ci --prefix {tmp_path}` failed (see above)" in done.stderr
    assert f"node-deps: {SKIPS}" in done.stderr
    assert f"node-deps: to get them later: npm ci --prefix {tmp_path}" in done.stderr


def test_a_missing_npm_warns_and_exits_zero(tmp_path: Path) -> None:
    done = _run(tmp_path, path=str(tmp_path / "empty"))
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    assert lines[:2] == ["node-deps: npm is not installed", f"node-deps: {SKIPS}"]


def test_make_setup_installs_node_through_the_script() -> None:
    recipe = (ROOT / "Makefile").read_text().split("$(STAMP):", 1)[1].split("\n\n", 1)[0]
    assert "bash scripts/node-deps.sh interop" in recipe
    assert not re.search(r"^\tnpm ", recipe, flags=re.M)
