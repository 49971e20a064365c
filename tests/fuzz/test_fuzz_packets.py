"""Fuzz: discovery datagrams, plain and keyed, and the node table they feed.

Anyone on the LAN can send the discovery port anything. The property: a
datagram is either a usable packet (string ``event``, non-empty string
``iid``, ``data`` object, and an ``advertisement`` object in a hello) or
:class:`~coterie.errors.DecodeError`; never another exception. What decodes
goes into a :class:`~coterie.protocol.nodes.NodeTable` as a real node would
put it, which must not raise either. Valid packets round-trip, with and
without a key, and a wrong key never decodes.
"""

from __future__ import annotations

import json
import re
from typing import Any

from hypothesis import event, example, given
from hypothesis import strategies as st

from coterie.errors import DecodeError
from coterie.protocol.cipher import DiscoveryCipher
from coterie.protocol.nodes import NodeTable
from coterie.protocol.packets import GOODBYE, HELLO, PacketCodec, make_packet
from tests.fuzz import exact_scalars, fuzz_settings, json_trees

KEY = "fuzz discovery key"
#: Whether ``NodeTable.goodbye`` takes the datagram's source address.
PLAIN = PacketCodec()
KEYED = PacketCodec(KEY)

# -- strategies -------------------------------------------------------------------------

#: Any JSON value, including what orjson refuses: integers past 64 bits,
#: NaN and infinities (the standard library writes them), odd strings.
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=30)
    | st.sampled_from([HELLO, GOODBYE, "", "hello ", "HELLO"])
)
json_values = json_trees(json_scalars, width=4, key_size=10, leaves=12)
advertisements = st.dictionaries(
    st.sampled_from(["axon_type", "key", "namespace", "port", "respondsTo", "name", "tls"])
    | st.text(max_size=8),
    json_values,
    max_size=6,
)
#: Objects shaped like packets, each field present or not, of the right type or not.
packet_like = st.fixed_dictionaries(
    {},
    optional={
        "event": st.sampled_from([HELLO, GOODBYE]) | json_values,
        "pid": json_values,
        "iid": st.text(max_size=12) | json_values,
        "hostName": json_values,
        "data": st.fixed_dictionaries(
            {},
            optional={
                "advertisement": advertisements | json_values,
                "isMaster": json_values,
                "isMasterEligible": json_values,
                "weight": json_values,
                "address": json_values,
                "id": json_values,
            },
        )
        | json_values,
    },
)


@st.composite
def mutated(draw: st.DrawFn, data: bytes) -> bytes:
    """``data`` with a few bytes flipped, cut or inserted."""
    out = bytearray(data)
    for _ in range(draw(st.integers(0, 3))):
        kind = draw(st.sampled_from(["flip", "cut", "insert"]))
        at = draw(st.integers(0, len(out)))
        if kind == "flip" and at < len(out):
            out[at] ^= draw(st.integers(1, 255))
        elif kind == "cut":
            del out[at : at + draw(st.integers(1, 8))]
        else:
            out[at:at] = draw(st.binary(min_size=1, max_size=8))
    return bytes(out)


#: Objects with every field a packet needs, of the right type, and odd contents.
near_valid = st.fixed_dictionaries(
    {
        "event": st.sampled_from([HELLO, GOODBYE]),
        "iid": st.text(min_size=1, max_size=12),
        "data": st.fixed_dictionaries(
            {"advertisement": advertisements},
            optional={
                "isMaster": json_values,
                "isMasterEligible": json_values,
                "weight": json_values,
                "address": json_values,
            },
        ),
    },
    optional={"pid": json_values, "hostName": json_values},
)


def _dumps(value: Any) -> bytes:
    # The standard library writes what orjson would refuse (big ints, NaN).
    return json.dumps(value, allow_nan=True).encode()


plain_datagrams = (
    st.binary(max_size=512)
    | packet_like.map(_dumps)
    | near_valid.map(_dumps)
    | near_valid.map(_dumps).flatmap(mutated)
    | json_values.map(_dumps)
)


@st.composite
def keyed_datagrams(draw: st.DrawFn) -> bytes:
    """Datagrams a keyed node may receive: junk, ciphertext-shaped junk, or real ciphertext."""
    kind = draw(st.sampled_from(["junk", "blocks", "encrypted", "tampered"]))
    if kind == "junk":
        return draw(st.binary(max_size=512))
    if kind == "blocks":  # whole AES blocks, wrapped as cote sends them
        blocks = draw(st.binary(min_size=16, max_size=160).map(lambda b: b[: len(b) // 16 * 16]))
        return blocks.decode("latin-1").encode("utf-8")
    plaintext = draw(plain_datagrams)
    key = draw(st.sampled_from([KEY, "another key"]))
    datagram = DiscoveryCipher(key).encrypt(plaintext)
    return draw(mutated(datagram)) if kind == "tampered" else datagram


#: JSON values orjson writes and reads back unchanged.
exact_json = json_trees(exact_scalars(), width=4, key_size=10, leaves=12)
valid_packets = st.builds(
    make_packet,
    st.sampled_from([HELLO, GOODBYE]) | st.text(max_size=10),
    st.text(max_size=20),
    st.text(min_size=1, max_size=40),
    st.text(max_size=20),
    st.fixed_dictionaries(
        {"advertisement": st.dictionaries(st.text(max_size=10), exact_json, max_size=5)},
        optional={"isMaster": st.booleans(), "weight": st.floats(-1, 0), "address": st.text()},
    ),
)


# -- the properties ---------------------------------------------------------------------


def decode(codec: PacketCodec, datagram: bytes) -> dict[str, Any] | None:
    """The packet, checked for the fields every packet has; ``None`` for a DecodeError."""
    try:
        packet = codec.decode(datagram)
    except DecodeError as exc:
        event("refused: " + re.sub(r"\d+", "N", str(exc).split(":")[0]))
        return None
    event(f"decoded: {packet['event'] if packet['event'] in (HELLO, GOODBYE) else 'other'}")
    assert isinstance(packet, dict)
    assert isinstance(packet["event"], str)
    assert isinstance(packet["iid"], str) and packet["iid"]
    assert isinstance(packet["data"], dict)
    if packet["event"] == HELLO:
        assert isinstance(packet["data"]["advertisement"], dict)
    return packet


def into_table(packet: dict[str, Any]) -> None:
    """Feed a decoded packet to a node table the way discovery does."""
    table = NodeTable("me", "my pid", node_timeout=5.0, master_timeout=6.0)
    if packet["event"] == HELLO:
        seen = table.hello(packet, "192.0.2.7", 100.0)
        assert seen is not None
        node = seen[0]
        assert node.port is None or 0 < node.port < 65536
        assert isinstance(node.connect_host(False), str)
        assert isinstance(node.connect_host(True), str)
        assert isinstance(node.weight, float)
        # The same packet again is an update, never a crash.
        table.hello(packet, "192.0.2.7", 101.0)
    elif packet["event"] == GOODBYE:
        table.goodbye(packet, "192.0.2.7")  # the table checks the goodbye's source address
    table.check(200.0)  # long after the node timeout
    assert not table.nodes


@fuzz_settings(ci=120)
@given(plain_datagrams)
@example(b"")
@example(b"null")
@example(b'{"event":"hello","iid":"x","data":{"advertisement":{"port":1e308}}}')
@example(b'{"event":"hello","iid":"x","data":{"advertisement":{},"weight":1e308}}')
@example(b"[" * 5000)
def test_plain_datagrams_decode_or_are_refused(datagram: bytes) -> None:
    packet = decode(PLAIN, datagram)
    if packet is not None:
        into_table(packet)
    # A keyed node refuses every plaintext datagram.
    assert decode(KEYED, datagram) is None


@fuzz_settings(ci=80)
@given(keyed_datagrams())
def test_keyed_datagrams_decode_or_are_refused(datagram: bytes) -> None:
    packet = decode(KEYED, datagram)
    if packet is not None:
        into_table(packet)


@fuzz_settings(ci=60)
@given(st.binary(min_size=1, max_size=200), st.data())
def test_oversized_datagrams_are_refused(datagram: bytes, data: st.DataObject) -> None:
    max_size = data.draw(st.integers(0, len(datagram) - 1), label="max_size")
    codec = PacketCodec(data.draw(st.sampled_from([None, KEY])), max_size=max_size)
    assert decode(codec, datagram) is None


@fuzz_settings(ci=80)
@given(valid_packets, st.none() | st.text(min_size=1, max_size=30))
def test_valid_packets_round_trip_and_a_wrong_key_never_decodes(
    packet: dict[str, Any], key: str | None
) -> None:
    codec = PacketCodec(key)
    datagram = codec.encode(packet)
    assert codec.decode(datagram) == packet
    other = PacketCodec((key or "") + "!")
    assert decode(other, datagram) is None
    if key is not None:
        assert decode(PLAIN, datagram) is None
