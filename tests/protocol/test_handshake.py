"""The link handshake as pure frames: nonces by argument, no sockets."""

from __future__ import annotations

import pytest

from coterie.errors import AuthError
from coterie.protocol.framing import FrameDecoder
from coterie.protocol.handshake import NONCE_SIZE, ClientHandshake, ServerHandshake

N1, N2, N3 = (bytes([i]) * NONCE_SIZE for i in (1, 2, 3))


def _frame(data: bytes) -> list[object]:
    (args,) = FrameDecoder().feed(data)
    assert isinstance(args, list)
    return args


def test_handshake_succeeds_with_the_same_secret() -> None:
    server, client = ServerHandshake("s3cret", N1), ClientHandshake("s3cret", N2)
    answer = client.receive(_frame(server.challenge()))
    assert answer is not None and not client.done
    confirmation = server.receive(_frame(answer))
    assert server.done
    assert client.receive(_frame(confirmation)) is None
    assert client.done


def test_wrong_client_secret_is_refused() -> None:
    server, client = ServerHandshake("right", N1), ClientHandshake("wrong", N3)
    answer = client.receive(_frame(server.challenge()))
    assert answer is not None
    with pytest.raises(AuthError, match="does not know the link secret"):
        server.receive(_frame(answer))
    assert not server.done


def test_client_refuses_a_server_that_does_not_know_the_secret() -> None:
    real, impostor = ServerHandshake("right", N1), ServerHandshake("wrong", N2)
    client = ClientHandshake("right", N3)
    answer = client.receive(_frame(impostor.challenge()))
    assert answer is not None
    # The impostor cannot produce the proof; replaying the real server's is no use.
    other_client = ClientHandshake("right", N3)
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
        ServerHandshake("k", N1).receive(frame)


def test_a_nonce_of_the_wrong_size_is_refused() -> None:
    with pytest.raises(ValueError, match="random bytes"):
        ServerHandshake("k", b"short")


def test_the_same_inputs_give_the_same_frames() -> None:
    assert ServerHandshake("k", N1).challenge() == ServerHandshake("k", N1).challenge()
    assert ServerHandshake("k", N1).challenge() != ServerHandshake("k", N2).challenge()
