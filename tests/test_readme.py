"""The README's example runs and prints what it says."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def test_readme_example_runs(tmp_path: Path) -> None:
    (code,) = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    script = tmp_path / "example.py"
    script.write_text(code)
    env = {**os.environ, "COTE_BROADCAST_ADDRESS": "127.255.255.255", "COTE_LOG": "false"}
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=30, env=env
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "True"
