"""A plain responder loads nothing it does not use (idle memory, issue 19 item 3).

Each check runs in a fresh interpreter, so what the test process already
imported does not count. TLS (cryptography, about 10 MiB resident),
discovery encryption, Redis and etcd discovery, metrics, tracing and the
other components load on first use only; ``coterie.Requester`` and friends
still resolve through the package's lazy attributes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import coterie

#: Never imported by ``import coterie`` and a plain responder.
HEAVY = (
    "cryptography",
    "coterie.metrics",
    "coterie.tracing",
    "coterie.discovery.redis",
    "coterie.discovery.etcd",
    "coterie.components.requester",
    "coterie.components.monitor",
    "coterie.components.publisher",
    "coterie.components.subscriber",
    "prometheus_client",
    "opentelemetry",
    "redis",
    # typed contracts (coterie.typed) load their library only for a model
    "msgspec",
    "pydantic",
    "pydantic_core",
    "tempfile",
    "pathlib",
    # listing interfaces (getifaddrs) is for a broadcast to 255.255.255.255 only
    "ctypes",
    "_ctypes",
    # Redis and etcd URLs, seeds and IPv6 addresses only
    "urllib",
    "ipaddress",
    # loaded by uvloop resolving the listen address (getaddrinfo): a plain
    # listener binds its IP address itself, so no thread pool either
    "encodings.idna",
    "unicodedata",
    # the compiled build's source check uses binascii.crc32
    "zlib",
)

#: A started, idle responder in host scope, and a hello heard from a peer.
STARTED = r"""
import asyncio, os, threading
os.environ["COTE_BROADCAST_ADDRESS"] = "127.255.255.255"
import uvloop
import coterie
from coterie.protocol.nodes import _reachable

async def main():
    r = coterie.Responder("idle", key="lazy-imports-" + str(os.getpid()))
    r.on("echo", lambda q: q)
    async with r:
        await asyncio.sleep(0.2)
        assert _reachable("192.0.2.7") and not _reachable("127.0.0.1")
        assert threading.active_count() == 1, threading.enumerate()
        with open("/proc/self/status") as f:
            threads = [line for line in f if line.startswith("Threads:")]
        assert threads == ["Threads:\t1\n"], threads

uvloop.run(main())
"""


def loaded_after(code: str, *, pure: bool | None = None) -> set[str]:
    """Top-level and coterie module names loaded after running ``code``.

    ``pure`` sets ``COTERIE_NO_EXTENSIONS`` (``None``: as in this process).
    """
    script = f"import sys, json\n{code}\nprint(json.dumps(sorted(sys.modules)))"
    env = dict(os.environ)
    if pure is not None:
        env["COTERIE_NO_EXTENSIONS"] = "1" if pure else ""
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, env=env
    )
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    return set(json.loads(out.splitlines()[-1]))


def heavy(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if any(m == h or m.startswith(h + ".") for h in HEAVY))


def test_a_plain_responder_loads_no_optional_part() -> None:
    modules = loaded_after(
        "import coterie\n"
        "r = coterie.Responder('plain')\n"
        "r.on('echo', lambda q: q)\n"
        "coterie.Responder('metrics off', metrics=False, tracing=False)"
    )
    assert "coterie.components.responder" in modules
    assert heavy(modules) == []


def test_a_started_responder_loads_no_optional_part_nor_threads() -> None:
    for build in ("pure", "compiled"):
        modules = loaded_after(STARTED, pure=build == "pure")
        assert "coterie.discovery.transports" in modules
        assert heavy(modules) == [], build


def test_typed_contracts_load_nothing_until_a_model_is_used() -> None:
    """Annotated handlers and a requester's typed call path import no model library."""
    modules = loaded_after(
        "from typing import Any\n"
        "import coterie\n"
        "def check(req: dict[str, Any]) -> bool: return True\n"
        "r = coterie.Responder('annotated')\n"
        "r.on('check', check)\n"
        "assert r.handler('check') is check\n"
        "coterie.Requester('caller')\n"
        "assert coterie.Contract.__name__ == 'Contract'"
    )
    assert "coterie.typed" in modules
    assert [m for m in heavy(modules) if m != "coterie.components.requester"] == []
    used = loaded_after(
        "import msgspec, coterie\n"
        "class Card(msgspec.Struct): n: int\n"
        "def check(card: Card) -> bool: return True\n"
        "r = coterie.Responder('typed')\n"
        "r.on('check', check)\n"
        "assert r.handler('check') is not check"
    )
    assert "msgspec" in used
    assert not {"pydantic", "pydantic_core"} & used


def test_what_is_used_is_loaded() -> None:
    modules = loaded_after(
        "import coterie\n"
        "from coterie.tls import TLS\n"
        "from coterie.protocol.cipher import DiscoveryCipher\n"
        "TLS.from_secret('s', 'svc', server=True)\n"
        "DiscoveryCipher('key').encrypt(b'x')\n"
        "assert coterie.Requester.__name__ == 'Requester'\n"
        "assert coterie.DEFAULT_REQUEST_TIMEOUT > 0\n"
        "coterie.Responder('measured', metrics=True)"
    )
    assert {"cryptography", "coterie.components.requester", "coterie.metrics"} <= modules


def test_lazy_names_are_the_real_ones() -> None:
    from coterie.components.monitor import Monitor
    from coterie.components.requester import Requester

    assert coterie.Requester is Requester
    assert coterie.Monitor is Monitor
    assert set(coterie.__all__) <= set(dir(coterie))
    try:
        coterie.NoSuchThing  # noqa: B018
    except AttributeError as exc:
        assert "NoSuchThing" in str(exc)
    else:
        raise AssertionError("an unknown name must raise AttributeError")
