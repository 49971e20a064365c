"""The README's example runs and prints what it says."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

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
    """The "Testing your services" block passes as a test file, with no warning at all.

    In a project set up as the section says: pytest-asyncio named as the
    need, and the README's pyproject.toml block as the configuration.
    """
    text = README.read_text()
    section = text.split("## Testing your services", 1)[1].split("\n## ", 1)[0]
    assert "they need pytest-asyncio\n(`pip install pytest-asyncio`" in section
    (config,) = re.findall(r"```toml\n(.*?)```", section, flags=re.S)
    (code,) = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    (tmp_path / "pyproject.toml").write_text(config)
    (tmp_path / "test_validation.py").write_text(code)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COTE_", "COTERIE_"))}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-W", "error",
         "test_validation.py"],
        capture_output=True, text=True, timeout=60, env=env, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip().splitlines()[-1].startswith("2 passed in")
    assert "warning" not in (done.stdout + done.stderr).lower()


DEMO_DOC = README.parent / "docs" / "demo.md"


def _sh_blocks(doc: Path) -> list[str]:
    return re.findall(r"```sh\n(.*?)```", doc.read_text(), flags=re.S)


@pytest.mark.parametrize("doc", [README, DEMO_DOC], ids=["README", "demo.md"])
def test_every_shell_command_works_in_a_new_shell(doc: Path) -> None:
    """A command is a make target, curl, a .venv/bin path, or follows the activate line."""
    for block in _sh_blocks(doc):
        active = False
        for line in block.splitlines():
            command = line.split("#", 1)[0].strip()
            if not command or line[:1].isspace():  # comments, continuation lines
                continue
            if command == ". .venv/bin/activate":
                active = True
                continue
            words = command.split()
            while "=" in words[0] and len(words) > 1:  # VAR=value before the command
                words = words[1:]
            first = words[0]
            assert first in ("make", "curl") or first.startswith(".venv/bin/") or active, (
                f"{doc.name}: {line!r} needs the venv: `. .venv/bin/activate` first"
            )


def test_the_readme_activation_block_runs_in_a_new_shell() -> None:
    (block,) = [b for b in _sh_blocks(README) if ". .venv/bin/activate" in b]
    # A new shell: nothing of the venv on PATH, no VIRTUAL_ENV, no PYTHONPATH.
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": os.environ.get("HOME", "/")}
    done = subprocess.run(
        ["bash", "-ec", block], capture_output=True, text=True, timeout=60, env=env,
        cwd=README.parent,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "usage: coterie" in done.stdout
    assert "usage: validation_service.py" in done.stdout
