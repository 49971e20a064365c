"""scripts/quiet-pip.sh drops pip's "Location ... is ignored" warning and nothing else."""

from __future__ import annotations

import subprocess
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "quiet-pip.sh"

#: A stand-in for pip: the noisy warning, other output on both streams, exit 3.
IGNORED = "is ignored: it is neither a file nor a directory."
FAKE_PIP = rf"""
printf 'Collecting orjson\n'
printf "WARNING: Location 'file:///opt/pypi-more/simple/orjson/' {IGNORED}\n" >&2
printf 'WARNING: something else\n' >&2
printf "WARNING: Location 'file:///x/' {IGNORED} (not pip's)\n" >&2
printf 'ERROR: No matching distribution found for nosuch\n' >&2
exit 3
"""


def test_only_the_ignored_location_warning_is_dropped_and_the_exit_code_is_kept() -> None:
    done = subprocess.run(
        ["bash", str(SCRIPT), "bash", "-c", FAKE_PIP], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 3
    assert done.stdout == "Collecting orjson\n"
    assert done.stderr.splitlines() == [
        "WARNING: something else",
        f"WARNING: Location 'file:///x/' {IGNORED} (not pip's)",
        "ERROR: No matching distribution found for nosuch",
    ]


def test_a_quiet_success_is_silent_and_zero() -> None:
    done = subprocess.run(["bash", str(SCRIPT), "true"], capture_output=True, text=True, timeout=30)
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
