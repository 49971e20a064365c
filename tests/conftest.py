"""Session-wide test setup: a private network namespace and host-scope discovery.

Fixtures for every test: ``disc_port`` (a discovery port of the test's own)
and ``disc`` (``disc(**overrides)`` builds fast discovery options on it). The
shared time unit, ports and waits are in :mod:`tests.helpers`.
"""

from __future__ import annotations

import functools
import os

import pytest
from hypothesis import HealthCheck, settings

from tests import netns
from tests.helpers import (
    HOST_SCOPE,
    TIMEOUT_FACTOR,
    DiscoveryFactory,
    discovery_port,
    fast_discovery,
)

# Property tests judge behaviour, not speed: on a loaded 2-core machine data
# generation can be slow, which must not fail a run.
settings.register_profile("coterie", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("coterie")

#: Shared fixtures: ``redis_url`` and ``etcd_server`` (real servers per test).
pytest_plugins = ["tests.redis_server", "tests.etcd_server"]

# Host scope for every component the tests start, inside or outside a namespace.
os.environ.setdefault("COTE_BROADCAST_ADDRESS", HOST_SCOPE)


def pytest_configure(config: pytest.Config) -> None:
    """Enter a private network namespace before any socket is opened."""
    netns.enter_private_netns()


def pytest_report_header(config: pytest.Config) -> list[str]:
    """Say which build runs, where the discovery traffic goes, and the timing factor."""
    from coterie import _native

    if netns.reason_unavailable is None:
        where = "coterie: tests run in a private network namespace"
    else:
        where = f"coterie: host network namespace ({netns.reason_unavailable}); host scope only"
    return [
        f"coterie build: {_native.describe()}",
        where,
        f"coterie: COTERIE_TESTS_TIMEOUT_FACTOR={TIMEOUT_FACTOR:g}",
    ]


@pytest.fixture
def disc_port() -> int:
    """A discovery port of this test's own: its nodes meet no other test's."""
    return discovery_port()


@pytest.fixture
def disc(disc_port: int) -> DiscoveryFactory:
    """``disc(**overrides)``: fast host-scope discovery options on ``disc_port``."""
    return functools.partial(fast_discovery, disc_port)
