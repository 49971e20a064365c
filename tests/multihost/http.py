"""HTTP from inside a bed host, and stopping the services a test started there."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence

from tests.bed import Host

#: Python that GETs each URL argument in turn, retrying refused connections
#: for 20 s (the service may still be starting), and prints each body.
_FETCH = """\
import sys, time, urllib.request
end = time.monotonic() + 20
for url in sys.argv[1:]:
    while True:
        try:
            print(urllib.request.urlopen(url, timeout=15).read().decode())
            break
        except OSError:
            if time.monotonic() > end: raise
            time.sleep(0.05)
"""


async def fetch(host: Host, *urls: str, timeout: float = 40) -> str:
    """The bodies of ``urls``, fetched in ``host``, one after the other.

    Raises:
        AssertionError: Naming the host and the error when a URL did not answer.
    """
    proc = await host.spawn(
        [sys.executable, "-c", _FETCH, *urls],
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    assert proc.returncode == 0, f"no answer in {host.name}: {err.decode()[-500:]}"
    return out.decode()


async def stop_all(services: Sequence[asyncio.subprocess.Process]) -> list[str]:
    """SIGTERM each service still running; returns their stderr, in order."""
    logs = []
    for service in services:
        if service.returncode is None:
            service.terminate()
        _, err = await asyncio.wait_for(service.communicate(), 15)
        logs.append(err.decode())
    return logs
