"""Session-wide test setup: a private network namespace and host-scope discovery."""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

from tests import netns

# Property tests judge behaviour, not speed: on a loaded 2-core machine data
# generation can be slow, which must not fail a run.
settings.register_profile("coterie", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("coterie")

#: Shared fixtures: ``redis_url`` (a real redis-server per test).
pytest_plugins = ["tests.redis_server"]

# Host scope for every component the tests start, inside or outside a namespace.
os.environ.setdefault("COTE_BROADCAST_ADDRESS", "127.255.255.255")


def pytest_configure(config: pytest.Config) -> None:
    """Enter a private network namespace before any socket is opened."""
    netns.enter_private_netns()


def pytest_report_header(config: pytest.Config) -> str:
    """Say where the discovery traffic of this run goes."""
    if netns.reason_unavailable is None:
        return "coterie: tests run in a private network namespace"
    return f"coterie: host network namespace ({netns.reason_unavailable}); host scope only"
