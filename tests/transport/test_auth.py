"""Authenticated links over real sockets (the handshake itself: tests/protocol)."""

from __future__ import annotations

import pytest

from coterie import DiscoveryOptions, Requester, Responder

FAST = DiscoveryOptions(
    hello_interval=100, check_interval=200, node_timeout=400, master_timeout=500, port=24680
)


async def test_links_with_a_shared_secret_carry_requests() -> None:
    async with Responder(name="vault", discovery=FAST, secret="k1") as rep:
        rep.on("open", lambda req: "opened")
        assert rep.advertisement["auth"] == "hmac-sha256"
        async with Requester(name="teller", discovery=FAST, secret="k1", timeout=5) as req:
            assert await req.send({"type": "open"}) == "opened"


async def test_wrong_secret_never_gets_a_request_through(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("WARNING", logger="coterie")
    async with Responder(name="vault", discovery=FAST, secret="right") as rep:
        seen: list[object] = []
        rep.on("open", seen.append)
        async with Requester(name="thief", discovery=FAST, secret="wrong", timeout=0.5) as req:
            with pytest.raises(TimeoutError):
                await req.send({"type": "open"})
        assert seen == []
    assert "handshake" in caplog.text


async def test_components_without_secret_do_not_pair_with_secured_ones() -> None:
    async with Responder(name="vault", discovery=FAST, secret="k") as rep:
        rep.on("open", lambda req: "opened")
        async with Requester(name="plain", discovery=FAST, timeout=0.3) as req:
            with pytest.raises(TimeoutError):
                await req.send({"type": "open"})
            assert req.peers == []  # it saw the vault, and left it alone
