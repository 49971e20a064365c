"""The README's example runs and prints what it says."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def test_readme_example_runs(tmp_path: Path) -> None:
    code = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)[0]
    script = tmp_path / "example.py"
    script.write_text(code)
    env = {**os.environ, "COTE_BROADCAST_ADDRESS": "127.255.255.255", "COTE_LOG": "false"}
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=30, env=env
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "True"


def test_readme_testing_example_passes_under_pytest(tmp_path: Path) -> None:
    """The "Testing your services" block is a test file; it passes as one, alone."""
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    (code,) = [b for b in blocks if "coterie_mesh" in b]
    (tmp_path / "test_validation.py").write_text(code)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COTE_", "COTERIE_"))}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-c", os.devnull,
         "--rootdir", str(tmp_path), str(tmp_path / "test_validation.py")],
        capture_output=True, text=True, timeout=60, env=env, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 passed" in done.stdout
