"""AMP decoding at its edges: limits, chunk boundaries, empty arguments.

Found by mutation testing: each test pins what the decoder hands back when a
boundary falls exactly on a length prefix, the limit or the chunk's end.
"""

from __future__ import annotations

from typing import Any

import pytest

from coterie.errors import ProtocolError
from coterie.protocol.framing import DroppedFrame, FrameDecoder, encode_frame
from coterie.protocol.messages import encode_request, error_payload


def frame_of(*raw_args: bytes) -> bytes:
    """A frame from already-encoded arguments."""
    out = bytes([0x10 | len(raw_args)])
    for raw in raw_args:
        out += len(raw).to_bytes(4, "big") + raw
    return out


def test_the_smallest_limit_takes_the_smallest_frame() -> None:
    smallest = frame_of(b"")
    assert len(smallest) == 5
    assert FrameDecoder(max_frame_size=5).feed(smallest) == [[b""]]
    with pytest.raises(ValueError, match="at least 5 bytes"):
        FrameDecoder(max_frame_size=4)


class Widget:
    pass


def test_an_unserialisable_value_is_named_in_the_error() -> None:
    with pytest.raises(TypeError, match="cannot send Widget value as JSON"):
        encode_frame(["ok", Widget()])


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


# -- messages ---------------------------------------------------------------------------


@pytest.mark.parametrize("body", ["plain text", [1, "two"], None, 7])
def test_a_request_body_that_is_not_an_object_is_framed_like_any_value(body: Any) -> None:
    assert encode_request(body, "1:1") == encode_frame((body, "1:1"))
    assert FrameDecoder().feed(encode_request(body, "1:1")) == [[body, "1:1"]]


def test_an_unserialisable_request_is_a_type_error_naming_the_request() -> None:
    with pytest.raises(TypeError, match="cannot send request as JSON"):
        encode_request({"type": "t", "when": Widget()}, "1:1")


def test_error_payload_is_what_cote_expects_of_a_thrown_error() -> None:
    assert error_payload(ValueError("bad card")) == {"message": "bad card", "name": "ValueError"}
    # An error without a message still says what it was.
    assert error_payload(KeyboardInterrupt()) == {
        "message": "KeyboardInterrupt",
        "name": "KeyboardInterrupt",
    }
