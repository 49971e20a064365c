"""Authenticated links: the handshake as pure frames, and over real sockets."""

from __future__ import annotations

import pytest

from coterie import DiscoveryOptions, Requester, Responder
from coterie.core.auth import AuthError, ClientHandshake, ServerHandshake
from coterie.wire.amp import FrameDecoder

FAST = DiscoveryOptions(
    hello_interval=100, check_interval=200, node_timeout=400, master_timeout=500, port=24680
)


def _frame(data: bytes) -> list[object]:
    (args,) = FrameDecoder().feed(data)
    assert isinstance(args, list)
    return args


def test_handshake_succeeds_with_the_same_secret() -> None:
    server, client = ServerHandshake("s3cret"), ClientHandshake("s3cret")
    answer = client.receive(_frame(server.challenge()))
    assert answer is not None and not client.done
    confirmation = server.receive(_frame(answer))
    assert server.done
    assert client.receive(_frame(confirmation)) is None
    assert client.done


def test_wrong_client_secret_is_refused() -> None:
    server, client = ServerHandshake("right"), ClientHandshake("wrong")
    answer = client.receive(_frame(server.challenge()))
    assert answer is not None
    with pytest.raises(AuthError, match="does not know the link secret"):
        server.receive(_frame(answer))
    assert not server.done


def test_client_refuses_a_server_that_does_not_know_the_secret() -> None:
    real, impostor = ServerHandshake("right"), ServerHandshake("wrong")
    client = ClientHandshake("right")
    answer = client.receive(_frame(impostor.challenge()))
    assert answer is not None
    # The impostor cannot produce the proof; replaying the real server's is no use.
    other_client = ClientHandshake("right")
    real_answer = other_client.receive(_frame(real.challenge()))
    assert real_answer is not None
    confirmation = real.receive(_frame(real_answer))
    with pytest.raises(AuthError, match="server does not know"):
        client.receive(_frame(confirmation))


@pytest.mark.parametrize(
    "frame",
    [["coterie:auth"], ["request", "x", "y"], ["coterie:auth", "zz", "proof"], [None, 1, 2]],
)
def test_malformed_answers_are_refused(frame: list[object]) -> None:
    with pytest.raises(AuthError):
        ServerHandshake("k").receive(frame)


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
