"""Discovery datagrams: the encryption vector, the codec, and the hello's shape.

The vector (password ``secret``) was checked against Node 20's cote; the field
order of a hello follows node-discover, which Node peers do not need but which
keeps captures comparable byte for byte. The default size limit is the largest
UDP payload over IPv4 (65,507 bytes); each refusal names its reason for the log
line (pinned by mutation testing).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coterie.discovery.options import DiscoverySettings
from coterie.discovery.service import PROCESS_ID, Discovery
from coterie.discovery.transports import ReceiveCallback
from coterie.errors import DecodeError
from coterie.protocol.cipher import DiscoveryCipher, evp_bytes_to_key
from coterie.protocol.packets import GOODBYE, HELLO, PacketCodec, make_packet

PLAINTEXT = b'{"event":"hello"}'
CIPHERTEXT = bytes.fromhex("2e82af4a55d63e405ac38ee943ee4e8434cad636bd8f482787195d0e38827cdb")
DATAGRAM = bytes.fromhex(
    "2ec282c2af4a55c3963e405ac383c28ec3a943c3ae4ec28434c38ac39636c2bdc28f4827c287195d0e38c2827cc39b"
)


def hello_packet(iid: str = "iid-1", **adv: Any) -> dict[str, Any]:
    advertisement = {"type": "service", "name": "t", "key": "$$", "axon_type": "rep", **adv}
    return make_packet(
        HELLO,
        "pid-1",
        iid,
        "host",
        {"isMaster": False, "isMasterEligible": True, "weight": -0.17, "address": "127.0.0.1",
         "advertisement": advertisement, "id": iid, "processId": "pid-1"},
    )  # fmt: skip


# -- encryption -------------------------------------------------------------------


def test_evp_bytes_to_key_is_openssl_md5_derivation() -> None:
    pw = b"secret"
    d1 = hashlib.md5(pw).digest()
    d2 = hashlib.md5(d1 + pw).digest()
    d3 = hashlib.md5(d2 + pw).digest()
    assert evp_bytes_to_key(pw) == (d1 + d2, d3)


def test_encryption_vector_from_node() -> None:
    datagram = DiscoveryCipher("secret").encrypt(PLAINTEXT)
    assert datagram == DATAGRAM
    assert len(datagram) == 47
    assert datagram.decode("utf-8").encode("latin-1") == CIPHERTEXT


def test_decryption_vector_from_node() -> None:
    assert DiscoveryCipher("secret").decrypt(DATAGRAM) == PLAINTEXT


def test_an_empty_discovery_key_is_refused_with_a_reason() -> None:
    with pytest.raises(ValueError, match=r"^the discovery key must be a non-empty string$"):
        DiscoveryCipher("")


# -- the codec ------------------------------------------------------------------------


def test_plain_hello_round_trip_keeps_field_order() -> None:
    codec = PacketCodec()
    packet = hello_packet()
    datagram = codec.encode(packet)
    assert list(json.loads(datagram)) == ["event", "pid", "iid", "hostName", "data"]
    assert codec.decode(datagram) == packet
    assert not codec.encrypted


def test_encrypted_codec_reads_the_node_vector_as_a_bad_packet() -> None:
    # The vector decrypts, but {"event":"hello"} lacks an iid: a DecodeError, not a crash.
    with pytest.raises(DecodeError, match="iid"):
        PacketCodec("secret").decode(DATAGRAM)


wrong_key = PacketCodec("other").encode(hello_packet())
BAD_DATAGRAMS: dict[str, tuple[str | None, bytes]] = {
    "garbage": (None, b"\x00\xff\x10garbage"),
    "empty": (None, b""),
    "truncated": (None, PacketCodec().encode(hello_packet())[:40]),
    "json-array": (None, b"[1,2,3]"),
    "json-string": (None, b'"hello"'),
    "no-iid": (None, b'{"event":"hello","data":{"advertisement":{}}}'),
    "empty-iid": (None, b'{"event":"hello","iid":"","data":{"advertisement":{}}}'),
    "iid-not-string": (None, b'{"event":"hello","iid":5,"data":{"advertisement":{}}}'),
    "no-data": (None, b'{"event":"hello","iid":"x"}'),
    "data-not-object": (None, b'{"event":"hello","iid":"x","data":[]}'),
    "hello-no-advertisement": (None, b'{"event":"hello","iid":"x","data":{}}'),
    "advertisement-not-object": (
        None,
        b'{"event":"hello","iid":"x","data":{"advertisement":"rep"}}',
    ),
    "encrypted-to-plain": (None, wrong_key),
    "plain-to-encrypted": ("secret", PacketCodec().encode(hello_packet())),
    "wrong-key": ("secret", wrong_key),
    "not-utf8-to-encrypted": ("secret", b"\xff" * 32),
    "partial-block": ("secret", DATAGRAM[:-1]),
    "empty-to-encrypted": ("secret", b""),
}


@pytest.mark.parametrize("case", list(BAD_DATAGRAMS))
def test_bad_datagrams_raise_decode_error(case: str) -> None:
    key, datagram = BAD_DATAGRAMS[case]
    with pytest.raises(DecodeError):
        PacketCodec(key).decode(datagram)


def test_oversized_datagram_refused_both_ways() -> None:
    codec = PacketCodec(max_size=200)
    big = hello_packet(blob="x" * 300)
    with pytest.raises(ValueError, match="exceeds 200"):
        codec.encode(big)
    with pytest.raises(DecodeError, match="oversized"):
        codec.decode(PacketCodec().encode(big))


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


def test_goodbye_needs_no_advertisement() -> None:
    packet = make_packet(GOODBYE, "p", "i", "h", {"id": "i"})
    assert PacketCodec().decode(PacketCodec().encode(packet)) == packet


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53), max_value=2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=15,
)
packets = st.builds(
    make_packet,
    st.sampled_from([HELLO, GOODBYE]) | st.text(),
    st.text(),
    st.text(min_size=1),
    st.text(),
    st.fixed_dictionaries(
        {"advertisement": st.dictionaries(st.text(), json_values, max_size=5)},
        optional={"weight": st.floats(allow_nan=False, allow_infinity=False), "x": json_values},
    ),
)


@settings(max_examples=100, deadline=None)
@given(packet=packets, key=st.none() | st.text(min_size=1, max_size=40))
def test_codec_round_trip_with_and_without_key(packet: dict[str, Any], key: str | None) -> None:
    codec = PacketCodec(key)
    datagram = codec.encode(packet)
    assert codec.decode(datagram) == packet
    if key is not None:
        # Encrypted datagrams carry ciphertext as Latin-1 code points in UTF-8.
        assert len(datagram.decode("utf-8").encode("latin-1")) % 16 == 0


# -- the hello a Discovery sends --------------------------------------------------------


class CapturingTransport:
    """A transport that keeps what is sent and lets the test deliver datagrams."""

    def __init__(self, settings: DiscoverySettings) -> None:
        self.sent: list[bytes] = []
        self.receive: ReceiveCallback | None = None

    async def start(self, receive: ReceiveCallback) -> None:
        self.receive = receive

    def send(self, data: bytes) -> None:
        self.sent.append(data)

    async def close(self) -> None:
        self.receive = None


async def started_discovery(
    settings: DiscoverySettings | None = None,
) -> tuple[Discovery, CapturingTransport]:
    transports: list[CapturingTransport] = []

    def factory(s: DiscoverySettings) -> CapturingTransport:
        transports.append(CapturingTransport(s))
        return transports[0]

    adv = {"type": "service", "name": "Time Service", "respondsTo": ["time"], "key": "$$",
           "axon_type": "rep", "port": 8000}  # fmt: skip
    disc = Discovery(adv, settings or DiscoverySettings(hostname="box"), transport_factory=factory)
    await disc.start()
    return disc, transports[0]


async def test_hello_datagram_field_order_matches_cote() -> None:
    disc, transport = await started_discovery()
    try:
        assert len(transport.sent) == 1
        hello = json.loads(transport.sent[0])
        assert list(hello) == ["event", "pid", "iid", "hostName", "data"]
        assert list(hello["data"]) == [
            "isMaster",
            "isMasterEligible",
            "weight",
            "address",
            "advertisement",
            "id",
            "processId",
            "processCommand",
        ]
        assert hello["event"] == "hello"
        assert hello["pid"] == hello["data"]["processId"] == PROCESS_ID
        assert hello["iid"] == hello["data"]["id"] == disc.iid
        assert hello["hostName"] == "box"
        assert hello["data"]["isMaster"] is False
        assert hello["data"]["isMasterEligible"] is True
        assert -1 < hello["data"]["weight"] < 0
        assert isinstance(hello["data"]["processCommand"], str)
        assert hello["data"]["advertisement"]["port"] == 8000
    finally:
        await disc.close()


async def test_discovery_events_fast_contact_and_goodbye() -> None:
    disc, transport = await started_discovery()
    events: list[tuple[str, str]] = []
    disc.on(lambda event, node: events.append((event, node.id)))
    assert transport.receive is not None
    receive = transport.receive
    try:
        receive(PacketCodec().encode(hello_packet("peer")), "127.0.0.9")
        assert events == [("added", "peer")]
        assert disc.nodes["peer"].address == "127.0.0.9"
        await asyncio.sleep(0)
        assert len(transport.sent) == 2  # fast contact: answered the newcomer at once
        receive(PacketCodec().encode(hello_packet("peer")), "127.0.0.9")
        await asyncio.sleep(0)
        assert len(transport.sent) == 2  # but not a known node
        receive(PacketCodec().encode(hello_packet("peer", respondsTo=["x"])), "127.0.0.9")
        assert events[-1] == ("updated", "peer")
        receive(b"{garbage", "127.0.0.9")  # dropped, nothing happens
        own = json.loads(transport.sent[0])
        receive(json.dumps(own).encode(), "127.0.0.1")
        assert disc.iid not in disc.nodes
        bye = make_packet(GOODBYE, "pid-1", "peer", "host", {"id": "peer"})
        receive(PacketCodec().encode(bye), "127.0.0.66")  # forged: another address
        assert "peer" in disc.nodes
        receive(PacketCodec().encode(bye), "127.0.0.9")
        assert events[-1] == ("removed", "peer")
        assert "peer" not in disc.nodes
    finally:
        await disc.close()
    goodbye = json.loads(transport.sent[-1])
    assert goodbye["event"] == "goodbye" and goodbye["iid"] == disc.iid


async def test_encrypted_discovery_sends_ciphertext() -> None:
    disc, transport = await started_discovery(DiscoverySettings(hostname="box", key="secret"))
    try:
        packet = PacketCodec("secret").decode(transport.sent[0])
        assert packet["iid"] == disc.iid
        with pytest.raises(DecodeError):
            PacketCodec().decode(transport.sent[0])
    finally:
        await disc.close()


async def test_a_flood_of_newcomers_gets_a_bounded_number_of_replies() -> None:
    disc, transport = await started_discovery()
    assert transport.receive is not None
    try:
        sent_before = len(transport.sent)
        started = time.monotonic()
        for n in range(5000):  # fresh ids, as a forger would send them
            transport.receive(PacketCodec().encode(hello_packet(f"forged-{n}")), "127.0.0.9")
            if n % 500 == 0:
                await asyncio.sleep(0)
        await asyncio.sleep(0)
        replies = len(transport.sent) - sent_before
        elapsed = time.monotonic() - started
        # Coalesced per loop turn and within the budget: a burst of 5, then 10 a second.
        assert 1 <= replies <= 5 + 10 * elapsed + 1, (replies, elapsed)
        assert replies < 50
    finally:
        await disc.close()


async def test_a_goodbye_for_a_linked_node_is_left_to_the_link() -> None:
    disc, transport = await started_discovery()
    assert transport.receive is not None
    events: list[tuple[str, str]] = []
    disc.on(lambda event, node: events.append((event, node.id)))
    disc.linked = lambda iid: iid == "linked"
    try:
        for iid in ("linked", "unlinked"):
            transport.receive(PacketCodec().encode(hello_packet(iid)), "127.0.0.9")
        for iid in ("linked", "unlinked"):
            bye = make_packet(GOODBYE, "pid-1", iid, "host", {"id": iid})
            transport.receive(PacketCodec().encode(bye), "127.0.0.9")
        assert ("removed", "unlinked") in events and ("removed", "linked") not in events
        assert "linked" in disc.nodes
    finally:
        await disc.close()
