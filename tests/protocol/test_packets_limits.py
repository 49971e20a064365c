"""Discovery datagrams at the size limit, and why a bad one is refused.

Found by mutation testing. The default limit is the largest UDP payload over
IPv4 (65,507 bytes); each refusal names its reason for the log line.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from coterie.errors import DecodeError
from coterie.protocol.cipher import DiscoveryCipher
from coterie.protocol.packets import HELLO, PacketCodec, make_packet


def hello_of_size(size: int) -> tuple[dict[str, Any], bytes]:
    """A hello whose datagram is exactly ``size`` bytes."""
    packet = make_packet(HELLO, "p", "i", "h", {"advertisement": {"pad": ""}})
    pad = size - len(orjson.dumps(packet))
    packet["data"]["advertisement"]["pad"] = "x" * pad
    datagram = orjson.dumps(packet)
    assert len(datagram) == size
    return packet, datagram


def test_a_datagram_of_exactly_the_udp_maximum_passes_by_default() -> None:
    codec = PacketCodec()
    packet, datagram = hello_of_size(65507)
    assert codec.encode(packet) == datagram
    assert codec.decode(datagram) == packet
    bigger, big_datagram = hello_of_size(65508)
    with pytest.raises(ValueError, match="exceeds 65507: shrink the advertisement"):
        codec.encode(bigger)
    with pytest.raises(DecodeError, match="oversized"):
        codec.decode(big_datagram)


def test_a_datagram_of_exactly_max_size_passes() -> None:
    codec = PacketCodec(max_size=300)
    packet, datagram = hello_of_size(300)
    assert codec.encode(packet) == datagram
    assert codec.decode(datagram) == packet


@pytest.mark.parametrize(
    ("datagram", "reason"),
    [
        (b"{garbage", "not JSON: "),
        (b"[1]", "packet is not a JSON object"),
        (b'{"event":"hello","data":{}}', "packet lacks a string event or iid"),
        (b'{"event":"hello","iid":"x"}', "packet lacks a data object"),
        (b'{"event":"hello","iid":"x","data":{}}', "hello lacks an advertisement object"),
    ],
)
def test_each_refusal_says_why(datagram: bytes, reason: str) -> None:
    with pytest.raises(DecodeError) as caught:
        PacketCodec().decode(datagram)
    assert str(caught.value).startswith(reason)


def test_each_decryption_refusal_says_why() -> None:
    codec = PacketCodec("secret")
    reasons = {
        b"\xff" * 32: "encrypted datagram is not a binary string",
        b"": "ciphertext of 0 bytes is not whole AES blocks",
        b"x" * 17: "ciphertext of 17 bytes is not whole AES blocks",
        PacketCodec("other").encode(make_packet(HELLO, "p", "i", "h", {})): (
            "bad padding: wrong discovery key?"
        ),
    }
    for datagram, reason in reasons.items():
        with pytest.raises(DecodeError) as caught:
            codec.decode(datagram)
        assert str(caught.value) == reason


def test_an_empty_discovery_key_is_refused_with_a_reason() -> None:
    with pytest.raises(ValueError, match=r"^the discovery key must be a non-empty string$"):
        DiscoveryCipher("")
