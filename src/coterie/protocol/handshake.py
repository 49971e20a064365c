"""Authenticated links: a mutual HMAC challenge-response before any frame (sans-I/O).

Design: cote's TCP links have no handshake, so any discovered peer may join.
With a shared ``secret``, coterie adds one, made of ordinary AMP frames so the
framing layer is unchanged:

1. the listening side sends ``["coterie:auth", 1, server_nonce]``;
2. the connecting side answers ``["coterie:auth", client_nonce, client_proof]``
   with ``client_proof = HMAC-SHA256(secret, "client" | server_nonce | client_nonce)``;
3. the listening side checks it and answers ``["coterie:auth-ok", server_proof]``
   with ``server_proof = HMAC-SHA256(secret, "server" | client_nonce | server_nonce)``,
   which the connecting side checks.

Both sides prove knowledge of the secret without sending it, fresh nonces
defeat replay, and nothing but handshake frames is accepted until it is done.
The classes here only turn frames into frames or :class:`AuthError` (the
nonces come in as arguments, so they are tested deterministically); the link
in :mod:`coterie.transport.link` drives them. Node cote cannot take part, so a
component with a secret pairs only with peers that advertise ``auth``.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from coterie.errors import AuthError
from coterie.protocol.framing import encode_frame

__all__ = [
    "AUTH_SCHEME",
    "NONCE_SIZE",
    "AuthError",
    "ClientHandshake",
    "ServerHandshake",
]

#: Advertised in ``auth`` by components that require the handshake.
AUTH_SCHEME = "hmac-sha256"
_HELLO = "coterie:auth"
_OK = "coterie:auth-ok"
_VERSION = 1
_NONCE = 16
#: Bytes of fresh randomness each side brings to a handshake.
NONCE_SIZE = _NONCE


def _key(secret: str | bytes) -> bytes:
    key = secret.encode() if isinstance(secret, str) else bytes(secret)
    if not key:
        raise ValueError("a link secret must not be empty")
    return key


def _proof(key: bytes, label: bytes, first: bytes, second: bytes) -> str:
    return hmac.new(key, label + first + second, hashlib.sha256).hexdigest()


def _nonce(value: Any) -> bytes:
    if not isinstance(value, str) or len(value) != 2 * _NONCE:
        raise AuthError("handshake nonce is malformed")
    try:
        return bytes.fromhex(value)
    except ValueError:
        raise AuthError("handshake nonce is not hex") from None


def _fresh(nonce: bytes) -> bytes:
    if len(nonce) != _NONCE:
        raise ValueError(f"a handshake nonce must be {_NONCE} random bytes")
    return bytes(nonce)


class ServerHandshake:
    """The listening side's half of the handshake.

    Args:
        secret: The shared link secret.
        nonce: :data:`NONCE_SIZE` fresh random bytes (the adapter draws them).
    """

    def __init__(self, secret: str | bytes, nonce: bytes) -> None:
        self._key = _key(secret)
        self._nonce = _fresh(nonce)
        self.done = False

    def challenge(self) -> bytes:
        """The first frame to send."""
        return encode_frame((_HELLO, _VERSION, self._nonce.hex()))

    def receive(self, args: list[Any]) -> bytes:
        """Check the client's answer; returns the frame that completes the handshake.

        Raises:
            AuthError: When the answer is malformed or its proof is wrong.
        """
        if len(args) != 3 or args[0] != _HELLO:
            raise AuthError("expected the handshake answer")
        client_nonce = _nonce(args[1])
        expected = _proof(self._key, b"client", self._nonce, client_nonce)
        if not isinstance(args[2], str) or not hmac.compare_digest(args[2], expected):
            raise AuthError("the peer does not know the link secret")
        self.done = True
        return encode_frame((_OK, _proof(self._key, b"server", client_nonce, self._nonce)))


class ClientHandshake:
    """The connecting side's half of the handshake.

    Args:
        secret: The shared link secret.
        nonce: :data:`NONCE_SIZE` fresh random bytes (the adapter draws them).
    """

    def __init__(self, secret: str | bytes, nonce: bytes) -> None:
        self._key = _key(secret)
        self._nonce = _fresh(nonce)
        self._server_nonce: bytes | None = None
        self.done = False

    def receive(self, args: list[Any]) -> bytes | None:
        """Handle a handshake frame; returns a frame to send, if any.

        Raises:
            AuthError: When the server's frames are malformed or its proof is
                wrong (it does not know the secret).
        """
        if self._server_nonce is None:
            if len(args) != 3 or args[0] != _HELLO or args[1] != _VERSION:
                raise AuthError("expected a handshake challenge")
            self._server_nonce = _nonce(args[2])
            proof = _proof(self._key, b"client", self._server_nonce, self._nonce)
            return encode_frame((_HELLO, self._nonce.hex(), proof))
        if len(args) != 2 or args[0] != _OK or not isinstance(args[1], str):
            raise AuthError("expected the handshake confirmation")
        expected = _proof(self._key, b"server", self._nonce, self._server_nonce)
        if not hmac.compare_digest(args[1], expected):
            raise AuthError("the server does not know the link secret")
        self.done = True
        return None
