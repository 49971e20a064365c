"""Encrypted discovery: node-discover's ``key`` option (sans-I/O).

Design: cote encrypts each datagram with Node's legacy ``createCipher('aes256',
password)``. That is AES-256-CBC with PKCS#7 padding, its key and IV derived
by OpenSSL's ``EVP_BytesToKey`` (MD5, no salt, one round). The ciphertext
travels as a "binary" JavaScript string, so each byte is a Latin-1 code point
encoded as UTF-8. We use the ``cryptography`` package for AES and padding and
derive the key and IV once per password. cryptography is imported when a
cipher is made, so a mesh without a discovery key never loads it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from coterie.errors import DecodeError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.ciphers import Cipher, modes

__all__ = ["DiscoveryCipher", "evp_bytes_to_key"]


def evp_bytes_to_key(password: bytes, key_len: int = 32, iv_len: int = 16) -> tuple[bytes, bytes]:
    """OpenSSL's EVP_BytesToKey with MD5, no salt and one iteration."""
    import hashlib

    material = b""
    block = b""
    while len(material) < key_len + iv_len:
        block = hashlib.md5(block + password, usedforsecurity=False).digest()
        material += block
    return material[:key_len], material[key_len : key_len + iv_len]


class DiscoveryCipher:
    """Encrypts and decrypts discovery datagrams for one password.

    Args:
        password: The discovery ``key`` shared by every node of the mesh.
    """

    def __init__(self, password: str) -> None:
        if not password:
            raise ValueError("the discovery key must be a non-empty string")
        self._key, self._iv = evp_bytes_to_key(password.encode())

    def _cipher(self) -> Cipher[modes.CBC]:
        from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

        return Cipher(algorithms.AES(self._key), modes.CBC(self._iv))

    def encrypt(self, plaintext: bytes) -> bytes:
        """Encrypt plaintext and wrap the ciphertext the way cote sends it."""
        from cryptography.hazmat.primitives import padding

        padder = padding.PKCS7(128).padder()
        padded = padder.update(plaintext) + padder.finalize()
        encryptor = self._cipher().encryptor()
        ciphertext = encryptor.update(padded) + encryptor.finalize()
        return ciphertext.decode("latin-1").encode("utf-8")

    def decrypt(self, datagram: bytes) -> bytes:
        """Unwrap and decrypt a datagram.

        Raises:
            DecodeError: When it was not encrypted with this password.
        """
        try:
            ciphertext = datagram.decode("utf-8").encode("latin-1")
        except (UnicodeDecodeError, UnicodeEncodeError) as exc:
            raise DecodeError("encrypted datagram is not a binary string") from exc
        if not ciphertext or len(ciphertext) % 16:
            raise DecodeError(f"ciphertext of {len(ciphertext)} bytes is not whole AES blocks")
        decryptor = self._cipher().decryptor()
        padded = decryptor.update(ciphertext) + decryptor.finalize()
        from cryptography.hazmat.primitives import padding

        unpadder = padding.PKCS7(128).unpadder()
        try:
            return unpadder.update(padded) + unpadder.finalize()
        except ValueError as exc:
            raise DecodeError("bad padding: wrong discovery key?") from exc
