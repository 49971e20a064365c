"""A plain responder loads nothing it does not use (idle memory, issue 19 item 3).

Each check runs in a fresh interpreter, so what the test process already
imported does not count. TLS (cryptography, about 10 MiB resident),
discovery encryption, Redis and etcd discovery, metrics, tracing and the
other components load on first use only; ``coterie.Requester`` and friends
still resolve through the package's lazy attributes.
"""

from __future__ import annotations

import json
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
    "tempfile",
    "pathlib",
)


def loaded_after(code: str) -> set[str]:
    """Top-level and coterie module names loaded after running ``code``."""
    script = f"import sys, json\n{code}\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    ).stdout
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
