"""AMP codec: cote's exact frames, streaming, limits and a round-trip property.

The hex frames are the ones in the wire reference (section 3), captured from
Node cote 1.2.0; coterie must produce and accept them byte for byte. The limit
tests pin what the decoder hands back when a boundary falls exactly on a length
prefix, the limit or the chunk's end (found by mutation testing).
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coterie.errors import ProtocolError
from coterie.protocol.framing import (
    DroppedFrame,
    FrameDecoder,
    decode_arg,
    encode_arg,
    encode_frame,
)
from coterie.protocol.messages import encode_publish, encode_reply, encode_request, topic_for


def h(text: str) -> bytes:
    return bytes.fromhex(text.replace(" ", ""))


PING = h("12 00000017 6a3a7b2274797065223a2270696e67222c226e223a317d 00000008 733a343234323a30")
PONG = h("13 00000006 6a3a6e756c6c 00000006 733a706f6e67 00000008 733a343234323a30")
OK = h("13 00000006 6a3a6e756c6c 0000000d 6a3a7b226f6b223a747275657d 00000008 733a343234323a31")
PUBLISH = h("12 00000016 733a6d6573736167653a3a726e643a3a757064617465 00000009 6a3a7b2261223a317d")

REFERENCE: list[tuple[bytes, list[Any]]] = [
    (PING, [{"type": "ping", "n": 1}, "4242:0"]),
    (PONG, [None, "pong", "4242:0"]),
    (OK, [None, {"ok": True}, "4242:1"]),
    (PUBLISH, ["message::rnd::update", {"a": 1}]),
]


def frame_of(*raw_args: bytes) -> bytes:
    """A frame from already-encoded arguments (lets tests write bad ones)."""
    out = bytes([0x10 | len(raw_args)])
    for raw in raw_args:
        out += len(raw).to_bytes(4, "big") + raw
    return out


# -- cote's frames, byte for byte ---------------------------------------------


@pytest.mark.parametrize(("frame", "args"), REFERENCE)
def test_reference_frames_encode_exactly(frame: bytes, args: list[Any]) -> None:
    assert encode_frame(args) == frame


@pytest.mark.parametrize(("frame", "args"), REFERENCE)
def test_reference_frames_decode(frame: bytes, args: list[Any]) -> None:
    decoder = FrameDecoder()
    assert decoder.feed(frame) == [args]
    assert decoder.buffered == 0


def test_axon_helpers_build_the_reference_frames() -> None:
    assert encode_request({"type": "ping", "n": 1}, "4242:0") == PING
    assert encode_reply(None, "pong", "4242:0") == PONG
    assert encode_reply(None, {"ok": True}, "4242:1") == OK
    assert topic_for("update", "rnd") == "message::rnd::update"
    assert topic_for("update", None) == "message::update"
    assert encode_publish(topic_for("update", "rnd"), {"a": 1}) == PUBLISH


def test_reply_with_error_has_no_result() -> None:
    err = {"message": "boom", "name": "Error"}
    assert FrameDecoder().feed(encode_reply(err, "ignored", "7:1")) == [[err, "7:1"]]


def test_byte_by_byte_feed_yields_each_frame_once_in_order() -> None:
    stream = b"".join(frame for frame, _ in REFERENCE)
    decoder = FrameDecoder()
    got: list[Any] = []
    for i in range(len(stream)):
        got.extend(decoder.feed(stream[i : i + 1]))
    assert got == [args for _, args in REFERENCE]
    assert decoder.buffered == 0


def test_many_frames_in_one_chunk() -> None:
    stream = b"".join(frame for frame, _ in REFERENCE) * 3
    assert FrameDecoder().feed(stream) == [args for _, args in REFERENCE] * 3


# -- argument typing ------------------------------------------------------------


def test_argument_prefixes() -> None:
    assert encode_arg("hé") == b"s:h\xc3\xa9"
    assert encode_arg(None) == b"j:null"
    assert encode_arg([1, "a"]) == b'j:[1,"a"]'
    assert encode_arg(b"\x00\x01") == b"\x00\x01"
    assert encode_arg(bytearray(b"ab")) == b"ab"
    assert decode_arg(b"s:h\xc3\xa9") == "hé"
    assert decode_arg(b"j:3.5") == 3.5
    assert decode_arg(b"\x00\x01") == b"\x00\x01"


class Widget:
    pass


def test_an_unserialisable_value_is_named_in_the_error() -> None:
    with pytest.raises(TypeError, match="cannot send Widget value as JSON"):
        encode_frame(["ok", Widget()])


def test_more_than_fifteen_arguments_refused() -> None:
    (frame,) = FrameDecoder().feed(encode_frame(list(range(15))))
    assert isinstance(frame, list) and len(frame) == 15
    with pytest.raises(ValueError, match="at most 15"):
        encode_frame(list(range(16)))


def test_the_smallest_limit_takes_the_smallest_frame() -> None:
    smallest = frame_of(b"")
    assert len(smallest) == 5
    assert FrameDecoder(max_frame_size=5).feed(smallest) == [[b""]]
    with pytest.raises(ValueError, match="at least 5 bytes"):
        FrameDecoder(max_frame_size=4)


# -- limits and bad input ----------------------------------------------------------


def oversized_then_small(limit: int) -> tuple[bytes, bytes]:
    big = encode_frame([{"type": "big", "blob": "x" * (limit * 3)}, "1:1"])
    return big, PING


@pytest.mark.parametrize("chunk", [1, 7, 64, 10_000])
def test_oversized_frame_is_skipped_and_the_next_one_decodes(chunk: int) -> None:
    limit = 64
    big, small = oversized_then_small(limit)
    stream = big + small
    decoder = FrameDecoder(max_frame_size=limit)
    got: list[Any] = []
    for i in range(0, len(stream), chunk):
        got.extend(decoder.feed(stream[i : i + chunk]))
        # Never buffered: the skipped frame does not pile up in memory.
        assert decoder.buffered <= limit + chunk
    assert len(got) == 2
    dropped = got[0]
    assert isinstance(dropped, DroppedFrame)
    assert dropped.size == len(big)
    assert "exceeds" in dropped.reason and str(limit) in dropped.reason
    assert got[1] == [{"type": "ping", "n": 1}, "4242:0"]
    assert decoder.buffered == 0


def test_oversize_found_in_a_later_argument() -> None:
    # Each argument alone fits; together they do not.
    limit = 100
    frame = frame_of(b"s:" + b"a" * 60, b"s:" + b"b" * 60, b"s:end")
    decoder = FrameDecoder(max_frame_size=limit)
    got = [item for i in range(len(frame)) for item in decoder.feed(frame[i : i + 1])]
    got += decoder.feed(PONG)
    assert isinstance(got[0], DroppedFrame) and got[0].size == len(frame)
    assert got[1:] == [[None, "pong", "4242:0"]]


def test_frame_exactly_at_the_limit_is_kept() -> None:
    decoder = FrameDecoder(max_frame_size=len(PING))
    assert decoder.feed(PING) == [[{"type": "ping", "n": 1}, "4242:0"]]
    decoder = FrameDecoder(max_frame_size=len(PING) - 1)
    assert isinstance(decoder.feed(PING)[0], DroppedFrame)


@pytest.mark.parametrize("first", [0x00, 0x22, 0x47, 0xFF])
def test_bad_version_byte_is_a_protocol_error(first: int) -> None:
    decoder = FrameDecoder()
    with pytest.raises(ProtocolError, match=f"0x{first:02x}"):
        decoder.feed(bytes([first]) + PING[1:])


def test_bad_version_after_good_frames_raises() -> None:
    decoder = FrameDecoder()
    assert decoder.feed(PING) == [[{"type": "ping", "n": 1}, "4242:0"]]
    with pytest.raises(ProtocolError):
        decoder.feed(b"GET / HTTP/1.1\r\n\r\n")


@pytest.mark.parametrize(
    ("bad_arg", "reason"),
    [
        (b"j:{not json", "undecodable"),
        (b"j:", "undecodable"),
        (b"s:\xff\xfe", "undecodable"),
    ],
)
def test_undecodable_argument_is_dropped_and_the_stream_goes_on(
    bad_arg: bytes, reason: str
) -> None:
    bad = frame_of(bad_arg, b"s:1:1")
    decoder = FrameDecoder()
    got = decoder.feed(bad + PONG)
    assert isinstance(got[0], DroppedFrame)
    assert reason in got[0].reason
    assert got[0].size == len(bad)
    assert got[1] == [None, "pong", "4242:0"]


def test_an_undecodable_argument_is_reported_with_its_cause() -> None:
    (dropped,) = FrameDecoder().feed(frame_of(b"s:\xff"))
    assert isinstance(dropped, DroppedFrame)
    assert dropped.reason.startswith("undecodable argument: ")
    assert "0xff" in dropped.reason


def test_a_broken_stream_holds_nothing() -> None:
    decoder = FrameDecoder()
    assert decoder.feed(frame_of(b"s:a") + b"\x00 not amp") == [["a"]]
    assert decoder.buffered == 0
    with pytest.raises(ProtocolError):
        decoder.feed(frame_of(b"s:a"))
    other = FrameDecoder()
    with pytest.raises(ProtocolError):
        other.feed(b"\x00 not amp")
    assert other.buffered == 0


def test_frame_without_arguments_is_dropped() -> None:
    got = FrameDecoder().feed(b"\x10" + PING)
    assert got[0] == DroppedFrame("frame with no arguments", 1)
    assert got[1] == [{"type": "ping", "n": 1}, "4242:0"]


def test_truncated_frame_waits_for_more() -> None:
    decoder = FrameDecoder()
    assert decoder.feed(PING[:-3]) == []
    assert decoder.buffered == len(PING) - 3
    assert decoder.feed(PING[-3:]) == [[{"type": "ping", "n": 1}, "4242:0"]]


def oversized(limit: int) -> bytes:
    return frame_of(b"s:" + b"x" * limit)


def test_an_oversized_frame_after_a_good_one_reports_its_own_size() -> None:
    good, big = frame_of(b"s:ok"), oversized(64)
    got = FrameDecoder(max_frame_size=64).feed(good + big)
    assert got == [
        ["ok"],
        DroppedFrame(f"frame of {len(big)} bytes exceeds the limit of 64", len(big)),
    ]


def test_frames_after_an_oversized_one_in_the_same_chunk() -> None:
    limit = 64
    at_limit = frame_of(b"s:" + b"y" * (limit - 7))
    assert len(at_limit) == limit
    ends_empty = frame_of(b"s:a", b"")
    got = FrameDecoder(max_frame_size=limit).feed(oversized(limit) + at_limit + ends_empty)
    assert isinstance(got[0], DroppedFrame)
    assert got[1:] == [["y" * (limit - 7)], ["a", b""]]


def test_an_oversized_frame_ending_in_an_empty_argument_is_reported_at_once() -> None:
    big = frame_of(b"s:" + b"x" * 100, b"")
    decoder = FrameDecoder(max_frame_size=64)
    assert decoder.feed(big) == [
        DroppedFrame(f"frame of {len(big)} bytes exceeds the limit of 64", len(big))
    ]
    assert decoder.buffered == 0


def test_a_frame_of_empty_arguments_over_the_limit_is_skipped_in_one_feed() -> None:
    # Its size passes the limit on an empty argument: nothing is left to skip
    # in that argument, and the frames after it still come out of this feed.
    big = frame_of(b"", b"", b"", b"")
    assert len(big) == 17
    after = frame_of(b"")
    got = FrameDecoder(max_frame_size=12).feed(big + after)
    assert got == [DroppedFrame("frame of 17 bytes exceeds the limit of 12", 17), [b""]]


def test_a_skipped_length_prefix_in_its_own_chunk_is_not_read_as_a_frame() -> None:
    # A huge second argument whose length prefix (0x11000000) looks like the
    # head of a one-argument frame when read on its own.
    first = b"s:" + b"x" * 100
    head = bytes([0x12]) + len(first).to_bytes(4, "big") + first
    decoder = FrameDecoder(max_frame_size=64)
    assert decoder.feed(head) == []
    assert decoder.feed(bytes([0x11, 0, 0, 0]) + b"\x00" * 16) == []
    assert decoder.buffered == 0


# -- property: arbitrary values round trip, however the stream is cut ----------------

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53), max_value=2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(), inner, max_size=5),
    max_leaves=20,
)
# Raw buffers travel untagged, so one starting with an axon tag would read back
# as that type; cote has the same ambiguity.
raw_buffers = st.binary(max_size=200).filter(lambda b: b[:2] not in (b"s:", b"j:"))
arguments = st.lists(json_values | raw_buffers, min_size=1, max_size=6)


@settings(max_examples=100, deadline=None)
@given(frames=st.lists(arguments, min_size=1, max_size=4), data=st.data())
def test_round_trip_with_random_chunking(frames: list[list[Any]], data: st.DataObject) -> None:
    stream = b"".join(encode_frame(args) for args in frames)
    cuts = sorted(data.draw(st.lists(st.integers(min_value=0, max_value=len(stream)), max_size=20)))
    decoder = FrameDecoder()
    got: list[Any] = []
    start = 0
    for cut in [*cuts, len(stream)]:
        got.extend(decoder.feed(stream[start:cut]))
        start = cut
    assert got == frames
    assert decoder.buffered == 0


@given(
    body=st.dictionaries(st.text(max_size=8), json_values, max_size=5),
    result=json_values,
    request_id=st.text(max_size=20),
)
@settings(max_examples=150, deadline=None)
def test_specialised_encoders_match_the_general_one(
    body: dict[str, Any], result: Any, request_id: str
) -> None:
    assert encode_request(body, request_id) == encode_frame((body, request_id))
    assert encode_reply(None, result, request_id) == encode_frame((None, result, request_id))
