"""Fixtures shared by the component tests."""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable

import pytest

from coterie import DiscoveryOptions

#: Discovery ports handed out to tests, one each, so nodes of different tests
#: never pair (and parallel runs from other processes are unlikely to clash).
_ports = itertools.count(31000 + (os.getpid() % 500) * 16)

Discovery = Callable[[], DiscoveryOptions]


@pytest.fixture
def disc() -> Discovery:
    """Fast, host-scope discovery options on a port of this test's own."""
    port = next(_ports)

    def make() -> DiscoveryOptions:
        return DiscoveryOptions(
            port=port,
            broadcast="127.255.255.255",
            hello_interval=100,
            check_interval=200,
            node_timeout=400,
            master_timeout=500,
            log=False,
        )

    return make
