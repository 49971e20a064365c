"""Without the sockend extra, importing the Sockend says how to install it."""

from __future__ import annotations

import subprocess
import sys

import pytest

PROBE = """
import sys
sys.modules[{missing!r}] = None  # as if it were not installed
try:
    from coterie.gateways.sockend import Sockend
except ImportError as exc:
    print(type(exc).__name__, exc.name, exc, sep="|")
else:
    print("imported")
"""


@pytest.mark.parametrize("missing", ["aiohttp", "socketio"])
def test_importing_the_sockend_without_its_extra_names_the_install_command(missing: str) -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROBE.format(missing=missing)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    kind, name, message = done.stdout.strip().split("|")
    assert (kind, name) == ("ImportError", missing)
    assert "pip install 'coterie[sockend]'" in message
    assert f"{missing} is missing" in message
