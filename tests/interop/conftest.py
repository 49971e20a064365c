"""Fixtures for the tests that run real Node cote peers next to coterie."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

import pytest

from tests.interop.nodepeer import NodePeer, require_node, require_private_netns

NodePeerFactory = Callable[..., Awaitable[NodePeer]]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test of this folder ``node``."""
    for item in items:
        if "tests/interop/" in item.nodeid.replace("\\", "/"):
            item.add_marker(pytest.mark.node)


@pytest.fixture(autouse=True)
def _node_interop_prerequisites() -> None:
    """Skip with a reason unless node, interop/node_modules and a private netns exist."""
    require_private_netns()
    require_node()


@pytest.fixture
async def node_peer() -> AsyncIterator[NodePeerFactory]:
    """Start Node peers with ``await node_peer(role, config, env=None)``; all close at teardown."""
    peers: list[NodePeer] = []

    async def start(
        role: str, config: Mapping[str, Any] | None = None, env: Mapping[str, str] | None = None
    ) -> NodePeer:
        peer = await NodePeer.start(role, config, env)
        peers.append(peer)
        return peer

    yield start
    for peer in reversed(peers):
        await peer.close()
