"""The pytest plugin that ships with coterie: a fresh in-process mesh per test.

Registered through the ``pytest11`` entry point, so a project that installs
coterie gets the ``coterie_mesh`` fixture with no configuration. It needs an
async test runner (pytest-asyncio, in strict or auto mode, or anyio) for the
tests that use it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from coterie.testing import Mesh

try:  # pytest-asyncio's decorator works in its strict and auto modes alike
    from pytest_asyncio import fixture as _async_fixture
except ImportError:  # pragma: no cover - anyio's plugin takes plain fixtures
    _async_fixture = pytest.fixture  # type: ignore[assignment]

__all__ = ["coterie_mesh"]


@_async_fixture
async def coterie_mesh() -> AsyncIterator[Mesh]:
    """A :class:`~coterie.testing.Mesh`, closed after the test."""
    async with Mesh() as mesh:
        yield mesh
