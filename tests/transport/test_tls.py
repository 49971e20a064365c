"""Authenticated links over real sockets (the handshake itself: tests/protocol)."""

from __future__ import annotations

import pytest

from coterie import Requester, Responder
from tests.helpers import MS, DiscoveryFactory


async def test_links_with_a_shared_secret_carry_requests(disc: DiscoveryFactory) -> None:
    async with Responder(name="vault", discovery=disc(), secret="k1") as rep:
        rep.on("open", lambda req: "opened")
        assert rep.advertisement["auth"] == "hmac-sha256"
        async with Requester(
            name="teller", discovery=disc(), secret="k1", timeout=5_000 * MS
        ) as req:
            assert await req.send({"type": "open"}) == "opened"


async def test_wrong_secret_never_gets_a_request_through(
    disc: DiscoveryFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("WARNING", logger="coterie")
    async with Responder(name="vault", discovery=disc(), secret="right") as rep:
        seen: list[object] = []
        rep.on("open", seen.append)
        async with Requester(
            name="thief", discovery=disc(), secret="wrong", timeout=500 * MS
        ) as req:
            with pytest.raises(TimeoutError):
                await req.send({"type": "open"})
        assert seen == []
    assert "handshake" in caplog.text


async def test_components_without_secret_do_not_pair_with_secured_ones(
    disc: DiscoveryFactory,
) -> None:
    async with Responder(name="vault", discovery=disc(), secret="k") as rep:
        rep.on("open", lambda req: "opened")
        async with Requester(name="plain", discovery=disc(), timeout=300 * MS) as req:
            with pytest.raises(TimeoutError):
                await req.send({"type": "open"})
            assert req.peers == []  # it saw the vault, and left it alone
