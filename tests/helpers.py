"""What the tests share: one time unit, ports, fast discovery options, one poll.

Time
    Every timing in the tests (a wait's bound, a request timeout under test,
    the time left for a wrong pairing to happen, discovery intervals) is a
    multiple of :data:`MS`. ``MS`` is one millisecond times the environment
    variable ``COTERIE_TESTS_TIMEOUT_FACTOR`` (default 1), so a slow or busy
    machine runs the whole suite with every timing stretched alike::

        COTERIE_TESTS_TIMEOUT_FACTOR=3 .venv/bin/python -m pytest tests/components

    Options that cote counts in whole milliseconds take :func:`ms` (``ms(100)``
    is ``100 * MS`` as an int of real milliseconds).

Ports
    :func:`free_port` hands out ports below the kernel's ephemeral range (so no
    outgoing socket can take one meanwhile), checked free by binding, and never
    the same one twice in a session: nodes of one test never meet those of
    another. :func:`discovery_port` is the UDP flavour.

Discovery
    :func:`fast_discovery` is host scope (127.255.255.255) with short
    intervals, on a discovery port of its own unless one is given.

Waiting
    Prefer a component's own event-driven wait (``wait_connected``,
    ``wait_subscribers``, ``Monitor.wait_until``, ``on_node``). For a condition
    with no event of its own (log text, a table's contents), :func:`wait_for`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import socket
from collections.abc import Callable
from typing import Any

from coterie import DiscoveryOptions, RemoteError, RequestTimeoutError
from coterie.testing import Mesh

__all__ = [
    "HOST_SCOPE",
    "MS",
    "TIMEOUT_FACTOR",
    "DiscoveryFactory",
    "discovery_port",
    "fast_discovery",
    "free_port",
    "ms",
    "wait_for",
    "work_every_role",
]

#: Multiplies every timing of the tests (``COTERIE_TESTS_TIMEOUT_FACTOR``, default 1).
TIMEOUT_FACTOR = float(os.environ.get("COTERIE_TESTS_TIMEOUT_FACTOR", "1"))
if TIMEOUT_FACTOR <= 0:
    raise ValueError(f"COTERIE_TESTS_TIMEOUT_FACTOR must be positive, got {TIMEOUT_FACTOR}")

#: The tests' unit of time, in seconds: one millisecond times the factor.
MS = 0.001 * TIMEOUT_FACTOR

#: Broadcast address that keeps discovery on this host.
HOST_SCOPE = "127.255.255.255"


def ms(units: float) -> int:
    """``units * MS`` as a whole number of real milliseconds, for options in ms."""
    return max(1, round(units * MS * 1000))


# -- ports ---------------------------------------------------------------------


def _ephemeral_low() -> int:
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


_PORT_BASE = 10000
_PORT_SPAN = max(1000, _ephemeral_low() - _PORT_BASE)
# Start where this process's id points, so concurrent sessions (outside a
# private network namespace) tend to walk different stretches.
_port_cursor = itertools.count(os.getpid() * 7919 % _PORT_SPAN)
_handed_out: set[int] = set()


def free_port(kind: socket.SocketKind = socket.SOCK_STREAM) -> int:
    """A port free on this host for ``kind``, never handed out before in this session.

    Raises:
        RuntimeError: When no port in the range is free.
    """
    for _ in range(_PORT_SPAN):
        port = _PORT_BASE + next(_port_cursor) % _PORT_SPAN
        if port in _handed_out:
            continue
        with socket.socket(socket.AF_INET, kind) as probe:
            try:
                probe.bind(("0.0.0.0", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise RuntimeError(f"no free port in {_PORT_BASE}-{_PORT_BASE + _PORT_SPAN - 1}")


def discovery_port() -> int:
    """A UDP port for one test's discovery mesh."""
    return free_port(socket.SOCK_DGRAM)


# -- discovery -------------------------------------------------------------------

#: Fast discovery timings, in units of MS.
FAST_TIMINGS = {"hello_interval": 100, "check_interval": 200, "node_timeout": 400,
                "master_timeout": 500}  # fmt: skip


def fast_discovery(port: int | None = None, **overrides: Any) -> DiscoveryOptions:
    """Host-scope discovery that finds peers within milliseconds.

    Hellos every ``100 * MS``, silent nodes dropped after ``400 * MS``, no
    hello log lines.

    Args:
        port: Discovery port; a fresh :func:`discovery_port` when ``None``.
            Components meet only when they share it.
        **overrides: Any :class:`~coterie.DiscoveryOptions` field, in its own
            units (intervals in real ms: pass ``ms(...)``).
    """
    fields: dict[str, Any] = {
        "port": discovery_port() if port is None else port,
        "broadcast": HOST_SCOPE,
        "log": False,
        **{name: ms(units) for name, units in FAST_TIMINGS.items()},
    }
    fields.update(overrides)
    return DiscoveryOptions(**fields)


#: ``disc()`` or ``disc(key="k", ...)``: fast discovery options on the test's port.
DiscoveryFactory = Callable[..., DiscoveryOptions]


# -- waiting ---------------------------------------------------------------------


async def wait_for(
    predicate: Callable[[], object], timeout: float = 5_000 * MS, *, what: str = ""
) -> None:
    """Wait until ``predicate()`` is true, checking it every ``5 * MS``.

    For conditions that raise no event of their own.

    Raises:
        AssertionError: When it is still false after ``timeout`` seconds.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() >= deadline:
            raise AssertionError(f"not true within {timeout:.3f} s: {what or predicate}")
        await asyncio.sleep(5 * MS)


async def work_every_role(mesh: Mesh) -> None:
    """Start every role on ``mesh`` and use each: requests answered, failed and timed out, an event.

    For tests that watch what components do, or that they do nothing, whatever the role.
    """
    got: list[int] = []
    responder = mesh.responder("validation")
    responder.on("validate", lambda req: True)
    responder.on("fail", lambda req: 1 / 0)
    requester = mesh.requester("payment")
    publisher = mesh.publisher("ticker")
    subscriber = mesh.subscriber("listener")
    subscriber.on("tick", got.append)
    await mesh.start()
    await requester.wait_connected(1, timeout=5_000 * MS)
    await publisher.wait_subscribers(1, timeout=5_000 * MS)
    assert await requester.send({"type": "validate"}) is True
    with contextlib.suppress(RemoteError):
        await requester.send({"type": "fail"})
        raise AssertionError("a failing handler must fail the request")
    with contextlib.suppress(RequestTimeoutError):
        await requester.send({"type": "nobody"}, timeout=20 * MS)
        raise AssertionError("a request nobody serves must time out")
    await publisher.publish("tick", 1)
    await wait_for(lambda: got == [1], 5_000 * MS)
